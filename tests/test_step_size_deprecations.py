"""The step-size lifecycle's old public names (``update_step_size(s)``, ``StepSizeKeeper.refresh_all``) still do
what the new ones do, with one DeprecationWarning each naming the new one."""

from __future__ import annotations

import warnings

import pytest
import torch

import sdnet_cli as sd
from sdnet_cli.engine.step_sizes import StepSizeKeeper
from sdnet_cli import deprecations


def _seen_layer(seed: int) -> sd.CSCConv2d:
    torch.manual_seed(seed)
    layer = sd.CSCConv2d(3, 6, 3, stride=2, padding=1).double()
    layer(torch.randn(1, 3, 10, 10, dtype=torch.float64))  # sets a step size at 10x10 (Lanczos to 1e-4)
    with torch.no_grad():
        layer.weight.mul_(1.5)  # moves L: a converge must change the step size
    return layer.eval()


CALLS = {
    "update_step_size": (lambda m: m.update_step_size(), lambda m: m.converge_step_size()),
    "update_step_sizes": (lambda m: sd.update_step_sizes(m), lambda m: sd.converge_step_sizes(m)),
    "StepSizeKeeper.refresh_all": (lambda m: StepSizeKeeper(m, 16).refresh_all(),
                                   lambda m: StepSizeKeeper(m, 16).converge_step_sizes()),
}


@pytest.mark.parametrize("old", sorted(CALLS))
def test_old_name_warns_once_and_converges(old: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deprecations, "_warned", set())
    old_call, new_call = CALLS[old]
    got, want, before = _seen_layer(0), _seen_layer(0), float(_seen_layer(0).step_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old_call(got)
        old_call(got)
    new_call(want)
    new_call(want)  # the same two calls (each converge starts warm from the last)
    hits = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert [str(w.message) for w in hits] == [f"{old} is deprecated, use {deprecations.DEPRECATED[old]}"]
    assert hits[0].filename == __file__  # points at the caller's line
    assert float(want.step_size) != before  # the new call did converge
    assert float(got.step_size) == float(want.step_size)


def test_old_names_are_not_advertised() -> None:
    import sdnet_cli.layers as layers

    assert "update_step_sizes" not in sd.__all__ and "update_step_sizes" not in layers.__all__
    assert set(deprecations.DEPRECATED.values()) <= {"converge_step_size", "converge_step_sizes",
                                                      "StepSizeKeeper.converge_step_sizes"}

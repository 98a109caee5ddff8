"""Old public names of ``sdnet_cli.viz`` still resolve, to the new object, with one DeprecationWarning each."""

from __future__ import annotations

import importlib
import warnings

import pytest

from sdnet_cli import deprecations


@pytest.mark.parametrize("old, new", [("VizOptions", "FigureOptions"), ("lambda_sweep", "lmbd_sweep")])
def test_old_name_warns_once_and_is_the_new_object(old: str, new: str, monkeypatch: pytest.MonkeyPatch) -> None:
    viz = importlib.import_module("sdnet_cli.viz")
    monkeypatch.setattr(deprecations, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = getattr(viz, old), getattr(viz, old)
    assert first is second is getattr(viz, new)
    hits = [w for w in caught if issubclass(w.category, DeprecationWarning) and old in str(w.message)]
    assert len(hits) == 1 and new in str(hits[0].message)


def test_unknown_name_is_an_attribute_error() -> None:
    import sdnet_cli.viz as viz

    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        viz.NoSuchName  # noqa: B018

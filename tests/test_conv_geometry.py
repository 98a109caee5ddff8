"""``functional.conv_geometry``: the code size and ``output_padding`` of ``D``/``Dᵀ``, checked against what
``F.conv2d`` and ``F.conv_transpose2d`` actually produce; the official step-size hooks refuse uneven padding; a
step size set from outside (``set_step_size``, ``step_size_external``) is left alone by forward."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sdnet_cli.errors import UsageError
from sdnet_cli.layers import CSCConv2d
from sdnet_cli.layers import functional as SF


@pytest.mark.parametrize("k, s, p, d, e", [(3, 1, 1, 1, 0), (3, 2, 1, 1, 0), (5, 3, 2, 2, 0), (4, 1, 1, 1, 1),
                                           ((3, 5), (2, 3), (1, 2), (1, 2), 0), (2, 2, 0, 1, (1, 0))])
def test_code_size_and_output_padding_are_torchs(k, s, p, d, e) -> None:  # noqa: ANN001
    w = torch.ones(2, 1, *SF._pair(k))
    for h, wd in itertools.product(range(7, 12), range(8, 11)):
        x = SF.pad_bottom_right(torch.zeros(1, 1, h, wd), e)
        code = F.conv2d(x, w, None, s, p, d)
        code_hw, op = SF.conv_geometry((h, wd), k, s, p, d, e)
        assert code_hw == tuple(code.shape[-2:])
        back = F.conv_transpose2d(code, w, None, s, p, op, 1, d)
        assert tuple(back.shape[-2:]) == tuple(x.shape[-2:])  # exactly the padded image: D is Dᵀ's adjoint
        assert SF.adjoint_output_padding((h, wd), k, s, p, d, e) == op


def test_official_step_sizes_refuse_an_unevenly_padded_layer() -> None:
    from sdnet_cli.engine.official_step_size import OfficialStepSizes

    model = nn.Sequential(CSCConv2d(3, 4, 2, padding="same"))
    with pytest.raises(UsageError, match="evenly padded"):
        OfficialStepSizes(model, seed=0)


def test_an_external_step_size_is_never_set_inited_or_tracked_by_forward() -> None:
    """``set_step_size`` + ``step_size_external``: forwards code with the value set, in training (new size, weights
    moved) and in eval (weights changed), and training forwards still renormalise the atoms."""
    import torch

    torch.manual_seed(0)
    layer = CSCConv2d(3, 4, 3, padding=1)
    layer.step_size_external = True
    v = torch.randn(1, 4, 6, 6)
    layer.set_step_size(0.0123, v)
    s = torch.tensor(0.0123).item()  # as the float32 buffer holds it
    with torch.no_grad():
        layer.weight.mul_(2.0)
    z = layer.train()(torch.randn(2, 3, 9, 9))  # a new size: a layer of its own would set here
    assert layer.step_size.item() == s and torch.equal(layer._v, v)
    assert torch.allclose(layer.weight.flatten(1).norm(dim=1), torch.ones(4))
    with torch.no_grad():
        layer.weight.mul_(3.0)
    layer.eval()(torch.randn(1, 3, 9, 9))  # a never-set layer would re-init here
    assert layer.step_size.item() == s and z.shape == (2, 4, 9, 9)
    layer.step_size_external = False
    layer.train()(torch.randn(2, 3, 9, 9))
    assert layer.step_size.item() != s  # its own lifecycle again

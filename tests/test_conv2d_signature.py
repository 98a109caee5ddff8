"""``CSCConv2d`` takes ``nn.Conv2d``'s signature: output shapes against ``nn.Conv2d`` over a grid (string paddings
included), the exact adjoint for ``padding='same'`` with even kernels, ``padding_mode``, ``device`` and ``dtype``."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sdnet_cli.layers import CSCConv2d, SparseCodingLinear
from sdnet_cli.layers import functional as SF

GRID = [(k, s, p, d) for k, s, p, d in itertools.product((1, 2, 3, 4, (2, 3)), (1, 2), (0, 1, 2, "same", "valid"), (1, 2))
        if not (p == "same" and s != 1)]


@pytest.mark.parametrize("k,s,p,d", GRID)
def test_output_shapes_match_conv2d(k, s, p, d) -> None:
    conv = nn.Conv2d(4, 6, k, s, p, d)
    layer = CSCConv2d(4, 6, k, s, p, d).eval()
    for hw in ((9, 9), (10, 11)):
        x = torch.randn(2, 4, *hw)
        if min(hw) + 2 * (p if isinstance(p, int) else 0) < d * (max(SF._pair(k)) - 1) + 1:
            continue  # the conv itself has no output
        z = layer(x)
        assert z.shape == conv(x).shape
        assert layer.decode(z, hw).shape == x.shape


@pytest.mark.parametrize("k,d", [(2, 1), (4, 1), ((2, 3), 1), (4, 3), (3, 2)])
def test_same_padding_is_conv2d_and_its_exact_adjoint(k, d) -> None:
    g = torch.Generator().manual_seed(0)
    layer = CSCConv2d(3, 5, k, padding="same", dilation=d, dtype=torch.float64)
    w = layer.weight.detach()
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=torch.float64)
    dtx = SF.dict_transpose(x, w, 1, layer.padding, dilation=d, pad_extra=layer.padding_extra)
    torch.testing.assert_close(dtx, F.conv2d(x, w, padding="same", dilation=d), rtol=0, atol=1e-12)  # Dᵀ = the conv
    z = torch.randn(dtx.shape, generator=g, dtype=torch.float64)
    dz = layer.decode(z, (9, 8))
    assert dz.shape == x.shape
    assert abs((dz * x).sum() - (z * dtx).sum()) < 1e-12 * (dz * x).abs().sum()  # <Dz, x> = <z, Dᵀx>
    # the step size a training forward sets is 0.9/‖D‖² of this geometry (D built column by column from decode)
    layer.train()(x.float().double())
    basis = torch.eye(z[0].numel(), dtype=torch.float64).reshape(-1, *z.shape[1:])
    with torch.no_grad():
        D = layer.decode(basis, (9, 8)).reshape(basis.shape[0], -1).T
    L = torch.linalg.matrix_norm(D, ord=2).item() ** 2
    assert abs(0.9 / layer.step_size.item() - L) / L < 1e-4


def test_same_padding_codes_the_same_lasso_as_the_explicit_matrix() -> None:
    g = torch.Generator().manual_seed(1)
    layer = CSCConv2d(2, 4, 4, padding="same", dtype=torch.float64, n_steps=3000, lmbd=0.05).eval()
    x = torch.randn(1, 2, 7, 7, generator=g, dtype=torch.float64)
    basis = torch.eye(4 * 49, dtype=torch.float64).reshape(-1, 4, 7, 7)
    with torch.no_grad():
        D = layer.decode(basis, (7, 7)).reshape(basis.shape[0], -1).T
    layer.step_size.fill_(0.9 / torch.linalg.matrix_norm(D, ord=2).item() ** 2)
    with torch.no_grad():
        z = layer(x).reshape(-1)
    # optimality of the non-negative lasso: Dᵀ(x − Dz) = λ where z > 0, ≤ λ where z = 0
    grad = D.T @ (x.reshape(-1) - D @ z)
    assert (grad[z > 0] - 0.05).abs().max() < 1e-5 and (grad[z == 0] <= 0.05 + 1e-5).all()


def test_positional_signature_device_and_dtype() -> None:
    layer = CSCConv2d(3, 8, 3, 1, "same", 1, 1, True, "zeros", "cpu", torch.float64)  # nn.Conv2d's order
    assert layer.weight.dtype == layer.bias.dtype == layer.step_size.dtype == torch.float64
    assert layer.padding == 1 and layer.padding_mode == "zeros" and layer.step_size.item() > 0
    assert CSCConv2d(3, 8, 3, padding="valid").padding == 0
    meta = CSCConv2d(3, 8, 3, device="meta")
    assert meta.weight.device.type == "meta" and meta.step_size.device.type == "meta"
    linear = SparseCodingLinear(6, 12, device="cpu", dtype=torch.float64)
    assert linear.weight.dtype == torch.float64 and linear(torch.randn(2, 6, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_other_padding_modes_are_refused_in_one_line(mode: str) -> None:
    nn.Conv2d(3, 8, 3, padding=1, padding_mode=mode)  # nn.Conv2d takes it; its adjoint is not conv_transpose2d
    with pytest.raises(ValueError, match="padding_mode='zeros' only") as info:
        CSCConv2d(3, 8, 3, padding=1, padding_mode=mode)
    assert "\n" not in str(info.value)


def test_same_with_stride_is_refused_as_conv2d_refuses_it() -> None:
    with pytest.raises(ValueError):
        nn.Conv2d(3, 8, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="strided"):
        CSCConv2d(3, 8, 3, stride=2, padding="same")

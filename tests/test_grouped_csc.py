"""Grouped, depthwise, dilated and any-stride CSC: adjointness, step size, lasso optimum, gradcheck, bias.

As in tests/test_layers.py for the dense case: the dictionary ``D`` is built as an explicit matrix column by
column from basis codes, and FISTA run to convergence must reach the objective of an independent lasso
solver (scikit-learn) on that matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.linear_model import Lasso

from sdnet_cli.errors import UsageError
from sdnet_cli.layers import CSCConv2d
from sdnet_cli.layers import functional as SF

# (c_in, c_out, kernel, stride, padding, dilation, groups, image (h, w))
GEOMETRIES = {
    "grouped": (4, 6, 3, 1, 1, 1, 2, (6, 6)),
    "depthwise": (3, 3, 3, 1, 1, 1, 3, (7, 6)),
    "depthwise-x2": (2, 4, 3, 2, 1, 1, 2, (7, 7)),  # channel multiplier 2, stride 2, odd size
    "dilated": (2, 3, 3, 1, 2, 2, 1, (6, 6)),
    "stride3-rect": (2, 3, (3, 2), 3, (1, 0), 1, 1, (8, 7)),
    "patchify": (2, 4, 4, 4, 0, 1, 1, (8, 8)),  # a ConvNeXt stem (kernel = stride)
}


def _geometry(name: str):
    c_in, c_out, k, s, p, d, g, hw = GEOMETRIES[name]
    return c_in, c_out, SF._pair(k), s, p, d, g, hw


def _weight(name: str, seed: int = 0) -> torch.Tensor:
    c_in, c_out, k, _, _, _, g, _ = _geometry(name)
    gen = torch.Generator().manual_seed(seed)
    return SF.normalize_atoms(torch.randn(c_out, c_in // g, *k, generator=gen, dtype=torch.float64))


def explicit_matrix(name: str, weight: torch.Tensor) -> torch.Tensor:
    """The matrix of ``z ↦ Dz`` (``(n_x, n_code)``), built as ``Dᵀ``'s transpose from ``conv2d`` of basis images.

    Uses only ``torch.nn.functional.conv2d`` (the definition of the convolution the layer replaces), not the
    transposed convolution the layer uses for ``D``.
    """
    c_in, _, _, s, p, d, g, hw = _geometry(name)
    n_x = c_in * hw[0] * hw[1]
    basis = torch.eye(n_x, dtype=weight.dtype).reshape(n_x, c_in, *hw)
    rows = torch.nn.functional.conv2d(basis, weight, None, s, p, d, g)  # Dᵀ e_i for every image basis vector
    return rows.reshape(n_x, -1)  # (n_x, n_code): row i = (Dᵀe_i)ᵀ, i.e. the matrix of D


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_dict_apply_is_exact_adjoint_and_matches_explicit_matrix(name: str) -> None:
    c_in, _, k, s, p, d, g, hw = _geometry(name)
    w = _weight(name)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, c_in, *hw, generator=gen, dtype=torch.float64)
    dtx = SF.dict_transpose(x, w, s, p, groups=g, dilation=d)
    z = torch.randn(dtx.shape, generator=gen, dtype=torch.float64)
    op = SF.adjoint_output_padding(hw, k, s, p, d)
    dz = SF.dict_apply(z, w, s, p, groups=g, dilation=d, output_padding=op)
    assert dz.shape == x.shape
    assert torch.allclose((dtx * z).sum(), (x * dz).sum(), rtol=1e-12)
    D = explicit_matrix(name, w)
    assert torch.allclose(D @ z[0].reshape(-1), dz[0].reshape(-1), atol=1e-12)


@pytest.mark.parametrize("name", ["grouped", "depthwise-x2", "dilated", "stride3-rect"])
def test_layer_step_size_matches_explicit_operator(name: str) -> None:
    c_in, c_out, k, s, p, d, g, hw = _geometry(name)
    torch.manual_seed(3)
    layer = CSCConv2d(c_in, c_out, GEOMETRIES[name][2], s, p, d, g).double()
    layer(torch.randn(2, c_in, *hw, dtype=torch.float64))  # the first forward sets the step size
    D = explicit_matrix(name, layer.weight.detach())
    L = torch.linalg.eigvalsh(D.T @ D)[-1].item()
    assert abs(0.9 / layer.step_size.item() - L) / L < 1e-6
    layer.converge_step_size((c_in, *hw))
    assert abs(0.9 / layer.step_size.item() - L) / L < 1e-6


def _lasso_objective(x: np.ndarray, D: np.ndarray, z: np.ndarray, lmbd: float) -> float:
    return float(lmbd * np.abs(z).sum() + 0.5 * np.sum((x - D @ z) ** 2))


@pytest.mark.parametrize("name,non_negative", [("grouped", True), ("depthwise", False), ("depthwise-x2", True),
                                               ("dilated", True), ("stride3-rect", False)])
def test_fista_reaches_lasso_optimum(name: str, non_negative: bool) -> None:
    c_in, _, k, s, p, d, g, hw = _geometry(name)
    w = _weight(name, seed=5)
    x = torch.randn(1, c_in, *hw, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    lmbd = 0.05
    D = explicit_matrix(name, w)
    L = torch.linalg.matrix_norm(D, ord=2).item() ** 2
    z = SF.csc_fista(x, w, 0.9 / L, lmbd, n_steps=1000, non_negative=non_negative, stride=s, padding=p,
                     groups=g, dilation=d)
    xv = x.flatten().numpy()
    ours = _lasso_objective(xv, D.numpy(), z.flatten().numpy(), lmbd)
    n = D.shape[0]  # sklearn: (1/2n)‖y − Xw‖² + α‖w‖₁  ⇒  α = λ/n
    ref = Lasso(alpha=lmbd / n, fit_intercept=False, positive=non_negative, tol=1e-12, max_iter=200_000)
    ref.fit(D.numpy(), xv)
    theirs = _lasso_objective(xv, D.numpy(), ref.coef_, lmbd)
    assert abs(ours - theirs) / abs(theirs) < 1e-4
    assert z.count_nonzero() < z.numel()  # λ > 0 makes the code sparse
    assert (z >= 0).all() if non_negative else (z < 0).any()


@pytest.mark.parametrize("name", ["depthwise-x2", "dilated", "stride3-rect"])
def test_gradcheck_float64(name: str) -> None:
    c_in, _, _, s, p, d, g, _ = _geometry(name)
    hw = (5, 4)  # small: gradcheck perturbs every input entry
    w = (_weight(name, seed=7) * 1.0).requires_grad_()
    x = torch.randn(1, c_in, *hw, generator=torch.Generator().manual_seed(8), dtype=torch.float64).requires_grad_()

    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return SF.csc_fista(x, w, 0.2, 0.01, n_steps=3, non_negative=True, stride=s, padding=p, groups=g, dilation=d)

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-5)


def test_layer_output_shape_equals_conv_and_bias_is_added_after_the_code() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 12, (3, 5), stride=(2, 3), padding=(1, 2), dilation=(1, 2), groups=3, bias=True)
    layer = CSCConv2d(6, 12, (3, 5), stride=(2, 3), padding=(1, 2), dilation=(1, 2), groups=3, bias=True).eval()
    with torch.no_grad():
        layer.bias.copy_(torch.arange(12.0))
    x = torch.randn(2, 6, 11, 13)
    y = layer(x)
    assert y.shape == conv(x).shape == (2, 12, 6, 3)
    code = SF.csc_fista(x, layer.weight, layer.step_size, 0.1, 0.0, 2, True, (2, 3), (1, 2), groups=3, dilation=(1, 2))
    torch.testing.assert_close(y, code + torch.arange(12.0).reshape(1, -1, 1, 1))
    x_hat = layer.decode(y, (11, 13))
    op = SF.adjoint_output_padding((11, 13), (3, 5), (2, 3), (1, 2), (1, 2))
    want = SF.dict_apply(code, layer.weight, (2, 3), (1, 2), groups=3, dilation=(1, 2), output_padding=op)
    torch.testing.assert_close(x_hat, want)
    torch.testing.assert_close(layer.reconstruction_error(x, y), (x - want).pow(2).flatten(1).sum(1))
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in conv.parameters())


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=4), "groups=4 must divide in_channels=6 and out_channels=6"),
    (dict(groups=2, expansion=2), r"expansion > 1 applies to dense CSC layers only \(groups=1\)"),
    (dict(stride=0), "stride must be an int >= 1 or a pair of them, got 0"),
    (dict(padding=-1), "padding must be an int >= 0 or a pair of them, got -1"),
    (dict(padding="same", stride=2), "padding='same' is not supported for strided convolutions"),
    (dict(padding="full"), "padding must be 'valid', 'same', an int or a pair, got 'full'"),
    (dict(padding_mode="reflect"), "supports padding_mode='zeros' only, got 'reflect'"),
    (dict(kernel_size=(3, 3, 3)), r"kernel_size must be an int >= 1 or a pair of them, got \(3, 3, 3\)"),
])
def test_bad_geometry_is_a_usage_error(kwargs: dict, message: str) -> None:
    args = {"in_channels": 6, "out_channels": 6, "kernel_size": 3, **kwargs}
    with pytest.raises(UsageError, match=message):
        CSCConv2d(**args)

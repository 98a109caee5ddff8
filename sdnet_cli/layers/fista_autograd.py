"""Memory-lean two-step CSC FISTA: the same values and gradients as :func:`functional.csc_fista`, less saved.

The paper's layer (two steps, non-negative, scalar λ, μ = 0) computes, with ``G = s·W`` and ``b = −λs``::

    z₁ = relu(conv2d(x, G) + b)
    r  = D z₁ − x                                   (D z = conv_transpose2d(z, W))
    z₂ = relu(z₁ + conv2d(r, −G) + b)

Autograd keeps ``x``, ``z₁``, ``r`` and ``z₂`` for backward. :func:`csc_fista_lean` keeps ``x`` and ``z₂``
(``z₂`` is the tensor the following BatchNorm keeps anyway) and recomputes ``z₁`` and ``r`` in backward:
two more convolutions per layer and step (the forward's first two) for one code-sized and one
image-sized tensor less. Where the residual is at most a quarter of the code's size (a stem: few image
channels, strided) it keeps ``r`` as well and recomputes only ``z₁``: the transposed convolution onto a
few channels is the slow direction on CPU (slower than a convolution of the same size: docs/benchmarks.md).
The backward, for
``g = ∂ℓ/∂z₂``::

    g₂ = g·[z₂ > 0];  g_r = −s·D g₂;  g₁ = (g₂ + Dᵀ g_r)·[z₁ > 0]
    ∂ℓ/∂x = s·D g₁ − g_r
    ∂ℓ/∂W = s·corr(x, g₁) − s·corr(r, g₂) + corr(g_r, z₁)    (corr(a, c) = conv2d_weight(a, ·, c))

ordered so that each code-sized tensor is freed after its last use, with ``∂ℓ/∂x`` skipped when ``x`` needs
no gradient (an input image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.grad import conv2d_input, conv2d_weight

from .dictionary import adjoint_output_padding


def lean_applies(lmbd: object, mu: float, n_steps: int, non_negative: bool) -> bool:
    """Whether :func:`csc_fista_lean` covers these settings (else use :func:`functional.csc_fista`); the
    dictionary must also be dense (``groups = 1``), undilated, square, with int stride and padding."""
    return n_steps == 2 and non_negative and not mu and not isinstance(lmbd, Tensor)


def csc_fista_lean(x: Tensor, weight: Tensor, step_size: Tensor, lmbd: float, stride: int = 1,
                   padding: int = 0) -> Tensor:
    """Two non-negative FISTA steps (``μ = 0``, scalar ``λ``): ``z₂`` ``(N, C_out, H', W')`` as
    ``csc_fista(x, weight, step_size, lmbd, 0.0, 2, True, stride, padding)``, saving only ``x`` and ``z₂``."""
    return _LeanTwoStep.apply(x, weight, step_size.to(weight.dtype), float(lmbd), int(stride), int(padding))


def _first_code(x: Tensor, weight: Tensor, s: Tensor, lmbd: float, stride: int, padding: int) -> Tensor:
    """``z₁ = relu(conv2d(x, sW) − λs)``."""
    bias = (-lmbd * s).reshape(1).expand(weight.shape[0])
    return F.conv2d(x, weight * s, bias, stride, padding).relu_()


def _residual(z1: Tensor, weight: Tensor, x: Tensor, stride: int, padding: int) -> Tensor:
    """``r = D z₁ − x`` (``D`` onto exactly ``x``'s size)."""
    out_pad = adjoint_output_padding((x.shape[-2], x.shape[-1]), int(weight.shape[-1]), stride, padding)
    return F.conv_transpose2d(z1, weight, None, stride, padding, out_pad).sub_(x)


def keeps_residual(x: Tensor, code: Tensor) -> bool:
    """Whether the lean step keeps ``r`` (the size of ``x``) rather than recompute it: ``4·|x| ≤ |z|``."""
    return 4 * x.numel() <= code.numel()


class _LeanTwoStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, s, lmbd, stride, padding):  # noqa: ANN001, ANN205
        z1 = _first_code(x, weight, s, lmbd, stride, padding)
        r = _residual(z1, weight, x, stride, padding)
        bias = (-lmbd * s).reshape(1).expand(weight.shape[0])
        z2 = F.conv2d(r, -(weight * s), bias, stride, padding).add_(z1).relu_()
        ctx.save_for_backward(x, weight, s, z2, *([r] if keeps_residual(x, z1) else []))
        ctx.conf = (lmbd, stride, padding)
        return z2

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        x, weight, s, z2, *kept = ctx.saved_tensors
        lmbd, stride, padding = ctx.conf
        with torch.no_grad():
            return _lean_backward(g, x, weight, s, z2, kept[0] if kept else None, lmbd, stride, padding,
                                  *ctx.needs_input_grad[:2])


def _lean_backward(g: Tensor, x: Tensor, weight: Tensor, s: Tensor, z2: Tensor, r: Tensor | None, lmbd: float,
                   stride: int, padding: int, need_x: bool, need_w: bool) -> tuple:
    """The module docstring's backward from ``g`` and the saved ``x``, ``z₂`` (and ``r``, if kept): recomputes
    ``z₁`` (and ``r``) here, so that each code-sized tensor is freed after its last use."""
    z1 = _first_code(x, weight, s, lmbd, stride, padding)
    r = _residual(z1, weight, x, stride, padding) if r is None else r
    g2 = torch.ops.aten.threshold_backward(g, z2, 0)  # g·[z₂ > 0]
    g_r = conv2d_input(r.shape, weight * -s, g2, stride, padding)
    gw = None
    if need_w:
        gw = conv2d_weight(g_r, weight.shape, z1, stride, padding)
        gw.sub_(conv2d_weight(r, weight.shape, g2, stride, padding).mul_(s))
    del r
    g1 = F.conv2d(g_r, weight, None, stride, padding).add_(g2)
    del g2
    g1.masked_fill_(z1 == 0, 0.0)  # ·[z₁ > 0] (z₁ ≥ 0)
    del z1
    if need_w:
        gw.add_(conv2d_weight(x, weight.shape, g1, stride, padding).mul_(s))
    gx = conv2d_input(x.shape, weight * s, g1, stride, padding).sub_(g_r) if need_x else None
    return gx, gw, None, None, None, None

"""Pure functions for convolutional (and matrix) sparse coding.

The lasso solved by a CSC layer with dictionary ``W`` (shape ``(out, in, k, k)``, a conv weight)::

    z* = argmin_z  λ‖z‖₁ + (μ/2)‖z‖₂² + ½‖x − D z‖₂²      (z ≥ 0 when non-negative)

with ``D z = conv_transpose2d(z, W)`` (image space, shape of ``x``) and ``Dᵀ x = conv2d(x, W)`` (code
space). FISTA with step ``s = 0.9 / L``, ``L`` the largest eigenvalue of ``DᵀD``, exactly as the official
SDNet code unrolls it (see docs/design.md §1). Every function here is stateless; ``D``, ``Dᵀ`` and their geometry
are in ``dictionary.py``; modules in ``csc.py`` hold the parameters; ``spectral.py`` estimates ``L``.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, TypedDict, TypeVar, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
# D, Dᵀ and their geometry are defined in dictionary.py and re-exported here (SF.dict_apply, SF.conv_geometry, …)
from .dictionary import (GEMM_MAX_TAPS, IntPair, _pair, adjoint_output_padding, conv_geometry, dict_apply,  # noqa: F401
                         dict_apply_gemm, dict_transpose, fx_tracing, pad_bottom_right, same_padding)

Lmbd = float | Tensor


class FistaOptions(TypedDict, total=False):
    """The solver options every FISTA entry point shares, passed by keyword (defaults: :func:`fista`'s):
    ``mu`` (μ ≥ 0 of the elastic net), ``n_steps`` (unrolled steps, ≥ 1), ``non_negative`` (codes ≥ 0)."""

    mu: float
    n_steps: int
    non_negative: bool


class CodingOptions(FistaOptions, total=False):
    """The keyword-only options of the sparse coding modules (``CSCConv2d``, ``SparseCodingLinear``; defaults:
    ``sparse_coding._SparseCoding.__init__``): :class:`FistaOptions` plus ``lmbd`` (λ), ``expansion`` (≥ 1 stacked
    copies of the input, the official ``n_dict``) and ``power_iters`` (warm power iterations per training forward)."""

    lmbd: float
    expansion: int
    power_iters: int


def elastic_net_prox(v: Tensor, threshold: Lmbd, scale: Lmbd = 1.0, non_negative: bool = True) -> Tensor:
    """Proximal operator of ``θ‖z‖₁ + (μ/2)‖z‖₂²`` in the official form ``softshrink(v·a, θ·a)``.

    ``scale`` is ``a = 1/(1+μs)`` and ``threshold`` is ``λs`` (a float or a tensor broadcastable to
    ``v``, e.g. ``(N, 1, 1, 1)`` for a per-sample λ). With ``non_negative`` the result is followed by
    ``relu``, which equals ``relu(v·a − θ·a)`` exactly and costs a single pass.
    """
    if not (isinstance(scale, float) and scale == 1.0):
        v = v * scale
        threshold = threshold * scale
    if non_negative:
        return F.relu(v - threshold)
    if isinstance(threshold, Tensor):
        return torch.sign(v) * F.relu(v.abs() - threshold)
    return F.softshrink(v, threshold)


def fista(
    b: Tensor,
    gradient_step: Callable[[Tensor], Tensor],
    step_size: Lmbd,
    lmbd: Lmbd,
    mu: float = 0.0,
    n_steps: int = 2,
    non_negative: bool = True,
) -> Tensor:
    """Unrolled FISTA for ``min λ‖z‖₁ + μ/2‖z‖² + ½‖x − Dz‖²`` given ``b = Dᵀx`` and a residual operator.

    ``gradient_step(y)`` must return ``Dᵀ(x − D y)``. Steps (docs/design.md §1)::

        z₁ = prox(s·b);  t₁ = (1+√5)/2
        z₂ = prox(z₁ + s·Dᵀ(x − D z₁))
        k>2: t = (1+√(1+4t²))/2;  y = z + ((t_prev−1)/t)(z − z_prev);  z = prox(y + s·Dᵀ(x − D y))

    costing ``2·n_steps − 1`` applications of ``D``/``Dᵀ`` in all (``b`` included). Shapes follow ``b``.
    """
    if n_steps < 1:
        raise UsageError(f"n_steps must be >= 1, got {n_steps}")
    scale = 1.0 / (1.0 + mu * step_size) if mu else 1.0
    threshold = lmbd * step_size

    def step(y: Tensor) -> Tensor:
        return elastic_net_prox(y + step_size * gradient_step(y), threshold, scale, non_negative)

    return _last(fista_loop(elastic_net_prox(step_size * b, threshold, scale, non_negative), step, n_steps))


T = TypeVar("T")


def momentum_point(z_prev: Tensor, z: Tensor, beta: float) -> Tensor:
    """FISTA's extrapolated point ``y = z + β(z − z_prev)``."""
    return z + beta * (z - z_prev)


def fista_loop(z1: T, step: Callable[[T], T], n_steps: int,
               extrapolate: Callable[[T, T, float], T] = momentum_point) -> Iterator[T]:
    """The FISTA momentum loop: yield ``z₁ … z_n`` (``n = n_steps``, at least ``z₁``) from ``z₁`` and the
    proximal gradient step ``step(y) = prox(y + s·Dᵀ(x − D y))``::

        z₂ = step(z₁);  t = (1+√5)/2
        k>2: t_prev, t = t, (1+√(1+4t²))/2;  β = (t_prev−1)/t;  z_k = step(extrapolate(z_{k−2}, z_{k−1}, β))

    ``extrapolate`` forms ``y = z + β(z − z_prev)`` (:func:`momentum_point`); a caller may form it another way
    (``lerp``) or on richer iterates (a code with its decoding). Every FISTA here runs this loop.
    """
    yield z1
    if n_steps < 2:
        return
    z_prev, z = z1, step(z1)
    yield z
    t = (1.0 + math.sqrt(5.0)) / 2.0
    for _ in range(n_steps - 2):
        t_prev, t = t, (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z_prev, z = z, step(extrapolate(z_prev, z, (t_prev - 1.0) / t))
        yield z


def _last(iterates: Iterator[T]) -> T:
    for z in iterates:
        pass
    return z


def _folded_constants(weight: Tensor, s: Lmbd, lmbd: Lmbd, mu: float, non_negative: bool):  # noqa: ANN202
    """``(a, G, θ, bias)`` of :func:`csc_fista`: ``a = 1/(1+μs)`` (``None`` when μ = 0), ``G = a·s·W``,
    ``θ = aλs``, and ``bias = −θ`` per output channel when a scalar λ with ``non_negative`` lets the
    convolution subtract it (else ``None``)."""
    a = 1.0 / (1.0 + mu * s) if mu else None
    gain = s if a is None else a * s
    theta = lmbd * gain
    bias = None
    if non_negative and not (isinstance(lmbd, Tensor) and lmbd.numel() > 1):
        theta = weight.new_tensor(theta) if isinstance(theta, (int, float)) else theta
        bias = (-theta).reshape(1).expand(weight.shape[0])
    return a, weight * gain, theta, bias


def _in_place_prox(theta: Lmbd, bias: Tensor | None, non_negative: bool) -> Callable[[Tensor], Tensor]:
    """The proximal map of :func:`csc_fista` on a fresh pre-activation ``v`` (the convolution's output, which
    no autograd node saved, so ``relu`` may overwrite it); with a ``bias`` the ``−θ`` is already in ``v``."""

    def prox_(v: Tensor) -> Tensor:
        if bias is not None:
            return v.relu_()
        th = theta if isinstance(theta, (int, float)) else theta.to(v.dtype)
        if non_negative:
            return v.sub_(th).relu_()
        if isinstance(th, (int, float)):
            return F.softshrink(v, th)
        return v - torch.clamp(v, -th, th)

    return prox_


def csc_fista(
    x: Tensor,
    weight: Tensor,
    step_size: Lmbd,
    lmbd: Lmbd,
    mu: float = 0.0,
    n_steps: int = 2,
    non_negative: bool = True,
    stride: IntPair = 1,
    padding: IntPair = 0,
    *,
    groups: int = 1,
    dilation: IntPair = 1,
    pad_extra: IntPair = 0,
) -> Tensor:
    """Convolutional sparse code of ``x`` ``(N, C_in, H, W)`` against ``W`` ``(C_out, C_in/groups, kh, kw)``.

    Returns ``z`` ``(N, C_out, H', W')`` after ``n_steps`` FISTA steps, the same iterates as
    :func:`fista` with ``gradient_step(y) = Dᵀ(x − D y)``, computed with the constants folded into
    the convolutions: with ``a = 1/(1+μs)``, ``θ = aλs`` and ``G = a·s·W``::

        z₁ = prox(conv2d(x, G) − θ)                       prox(v) = relu(v) | v − clamp(v, −θ', θ')
        z  = prox(a·y + conv2d(x − D y, G) − θ)

    A scalar λ (the usual case) and ``non_negative`` put ``−θ`` in the convolution's bias, so a step
    costs its two convolutions, one add and one ``relu``: ``2·n_steps − 1`` convolutions in all, no
    extra elementwise pass and nothing saved for backward beyond what the convolutions need.
    ``groups``/``dilation`` are those of the convolution (a grouped dictionary is block-diagonal); ``D``
    is the exact adjoint of ``Dᵀ`` for ``x``'s size at any stride (:func:`adjoint_output_padding`);
    ``pad_extra`` pads ``x`` unevenly (see :func:`dict_transpose`). Where ``x``'s size is symbolic (``torch.fx``
    tracing, dynamic shapes), ``D`` maps onto the largest image the code fits and is cropped to ``x``'s size.
    """
    if n_steps < 1:
        raise UsageError(f"n_steps must be >= 1, got {n_steps}")
    a, g_weight, theta, bias = _folded_constants(weight, step_size, lmbd, mu, non_negative)
    prox_ = _in_place_prox(theta, bias, non_negative)

    e = _pair(pad_extra)
    h, w = x.shape[-2], x.shape[-1]
    concrete = isinstance(h, int) and isinstance(w, int)
    crop = any(e) or not concrete
    op = None  # symbolic sizes (fx): D onto the largest image, cropped to x's size
    if concrete:
        op = adjoint_output_padding((h, w), tuple(weight.shape[-2:]), stride, padding, dilation, e)
    geom = dict(groups=groups, dilation=dilation)

    def step(y: Tensor) -> Tensor:
        # conv2d(D y − x, −G) = a·s·Dᵀ(x − D y); the bias adds −θ.
        dy = dict_apply(y, weight, stride, padding, output_padding=op, **geom)
        r = dy[..., :h, :w].sub_(x) if crop else dy.sub_(x)
        v = F.conv2d(pad_bottom_right(r, e), -g_weight, bias, stride, padding, dilation, groups)
        if a is None:
            return prox_(v.add_(y))
        if isinstance(a, (int, float)):
            return prox_(v.add_(y, alpha=a))
        return prox_(v.addcmul_(a.to(v.dtype), y))

    z1 = prox_(F.conv2d(pad_bottom_right(x, e), g_weight, bias, stride, padding, dilation, groups))
    return _last(fista_loop(z1, step, n_steps, _lerp_point))


def _lerp_point(z_prev: Tensor, z: Tensor, beta: float) -> Tensor:
    """:func:`momentum_point` as one ``lerp`` (``z_prev + (1 + β)(z − z_prev)``: one pass, one new tensor)."""
    return torch.lerp(z_prev, z, 1.0 + beta)


def linear_fista(x: Tensor, weight: Tensor, step_size: Lmbd, lmbd: Lmbd, **options: Unpack[FistaOptions]) -> Tensor:
    """Sparse code of ``x`` ``(M, D)`` against the matrix dictionary ``Dᵀ = weight`` ``(K, D)``: :func:`fista`
    (``options`` by keyword) with ``Dᵀx = x @ weightᵀ`` and ``Dz = z @ weight``; returns ``z`` ``(M, K)``.
    """

    def gradient_step(y: Tensor) -> Tensor:
        return F.linear(x - y @ weight, weight)

    return fista(F.linear(x, weight), gradient_step, step_size, lmbd, **options)


def lasso_objective(x: Tensor, z: Tensor, x_hat: Tensor, lmbd: Lmbd, mu: float = 0.0) -> Tensor:
    """Per-sample ``λ‖z‖₁ + μ/2‖z‖² + ½‖x − x̂‖²`` with ``x̂ = Dz``; returns shape ``(N,)``."""
    dims_x = tuple(range(1, x.dim()))
    dims_z = tuple(range(1, z.dim()))
    lmbd = lmbd.reshape(-1) if isinstance(lmbd, Tensor) else lmbd  # per-sample (N,) or one value
    return (
        lmbd * z.abs().sum(dims_z)
        + 0.5 * mu * z.pow(2).sum(dims_z)
        + 0.5 * (x - x_hat).pow(2).sum(dims_x)
    )


def normalize_atoms(weight: Tensor, eps: float = 1e-12) -> Tensor:
    """Each output atom ``weight[i]`` scaled to unit L2 norm (the official ``w_norm``)."""
    flat = weight.reshape(weight.shape[0], -1)
    return (flat / flat.norm(dim=1, keepdim=True).clamp_min(eps)).reshape(weight.shape)

"""The convolutional dictionary's operators and their geometry: ``D z = conv_transpose2d(z, W)`` (code → image),
``Dᵀ x = conv2d(x, W)`` (image → code), the code size and ``output_padding`` that make ``D`` the exact adjoint of
``Dᵀ`` at every input size and stride (:func:`conv_geometry`), and ``nn.Conv2d``'s ``'same'`` padding. Pure
functions; :mod:`.functional` (FISTA) and :mod:`.spectral` (``L``) build on them.
"""

from __future__ import annotations

import math

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor

IntPair = int | tuple[int, int]


def _pair(v: IntPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_geometry(
    image_hw: tuple[int, int], kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
    pad_extra: IntPair = 0,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(code_hw, output_padding)`` of ``Dᵀ`` (:func:`dict_transpose`) on an ``image_hw`` image: the geometry of
    ``D`` and ``Dᵀ`` in one place.

    ``conv2d`` maps ``H`` (``+ e`` rows of ``pad_extra``) to ``H' = ⌊(H + e + 2p − d(k−1) − 1)/s⌋ + 1`` and drops
    the last ``(H + e + 2p − d(k−1) − 1) mod s`` rows; ``conv_transpose2d`` with that ``output_padding`` puts them
    back (as zeros) and, cropped by ``e`` (:func:`dict_apply`), is the exact adjoint ``D`` of that ``Dᵀ`` for every
    ``H`` and stride.
    """
    k, s, p, d, e = (_pair(v) for v in (kernel, stride, padding, dilation, pad_extra))
    span = [n + e[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1 for i, n in enumerate(image_hw)]
    return (span[0] // s[0] + 1, span[1] // s[1] + 1), (span[0] % s[0], span[1] % s[1])


def adjoint_output_padding(
    image_hw: tuple[int, int], kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
    pad_extra: IntPair = 0,
) -> tuple[int, int]:
    """``output_padding`` per side that makes ``conv_transpose2d`` return exactly the (padded) ``image_hw`` the
    conv saw (:func:`conv_geometry`)."""
    return conv_geometry(image_hw, kernel, stride, padding, dilation, pad_extra)[1]


def dict_transpose(
    x: Tensor, weight: Tensor, stride: IntPair = 1, padding: IntPair = 0, *, groups: int = 1, dilation: IntPair = 1,
    pad_extra: IntPair = 0,
) -> Tensor:
    """``Dᵀx = conv2d(x, W, groups=g)``: image ``(N, C_in, H, W)`` → code ``(N, C_out, H', W')``.

    ``W`` is ``(C_out, C_in/g, kh, kw)``: with ``g`` groups the dictionary is block-diagonal (group ``j``'s
    atoms only touch image channels ``j·C_in/g …``). ``pad_extra`` zero rows (columns) more on the bottom
    (right) than on the top (left): ``padding='same'`` of an even kernel, as ``nn.Conv2d`` pads it.
    """
    return F.conv2d(pad_bottom_right(x, pad_extra), weight, None, stride, padding, dilation, groups)


def pad_bottom_right(x: Tensor, pad_extra: IntPair) -> Tensor:
    """``x`` with ``pad_extra`` zero rows below and columns to the right (``x`` itself when none)."""
    e = _pair(pad_extra)
    return F.pad(x, (0, e[1], 0, e[0])) if any(e) else x


def same_padding(kernel: IntPair, dilation: IntPair = 1) -> tuple[IntPair, IntPair]:
    """``nn.Conv2d``'s ``padding='same'`` (stride 1) as ``(padding, pad_extra)``: ``d(k−1)`` zeros per axis,
    ``⌊d(k−1)/2⌋`` on each side and, when ``d(k−1)`` is odd (an even kernel), one more on the bottom/right."""
    k, d = _pair(kernel), _pair(dilation)
    total = [d[i] * (k[i] - 1) for i in range(2)]
    pad = tuple(t // 2 for t in total)
    extra = tuple(t - 2 * (t // 2) for t in total)
    return (pad[0] if pad[0] == pad[1] else pad), (extra[0] if extra[0] == extra[1] else extra)  # type: ignore[return-value]


def dict_apply(
    z: Tensor, weight: Tensor, stride: IntPair = 1, padding: IntPair = 0, *,
    groups: int = 1, dilation: IntPair = 1, output_padding: IntPair | None = None, pad_extra: IntPair = 0,
) -> Tensor:
    """``D z = conv_transpose2d(z, W, groups=g)``: code ``(N, C_out, H', W')`` → image ``(N, C_in, H, W)``.

    ``output_padding`` (see :func:`adjoint_output_padding`) fixes which ``H`` the code came from; the
    default ``stride − 1`` is the largest one (exact for even sizes at stride 2, the usual case). On CPU
    without autograd, a dense square dictionary with few image-side taps (``C_in·k² ≤ 32``, e.g. an RGB
    3×3 stem) takes :func:`dict_apply_gemm`, the same sum computed faster than oneDNN's deconvolution.
    ``pad_extra`` (see :func:`dict_transpose`) crops that many rows/columns off the bottom/right: the adjoint
    of padding them (``output_padding`` then names the padded size).
    """
    e = _pair(pad_extra)
    if any(e):
        out = dict_apply(z, weight, stride, padding, groups=groups, dilation=dilation, output_padding=output_padding)
        return out[..., : out.shape[-2] - e[0], : out.shape[-1] - e[1]]
    s = _pair(stride)
    op = (s[0] - 1, s[1] - 1) if output_padding is None else _pair(output_padding)
    if (not fx_tracing() and z.device.type == "cpu" and math.prod(weight.shape[1:]) <= GEMM_MAX_TAPS
            and not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled() and (z.requires_grad or weight.requires_grad))
            and groups == 1 and _pair(dilation) == (1, 1) and isinstance(stride, int) and isinstance(padding, int)
            and weight.shape[-1] == weight.shape[-2] and op == (stride - 1, stride - 1)):
        return dict_apply_gemm(z, weight, stride, padding)
    return F.conv_transpose2d(z, weight, None, stride, padding, op, groups, dilation)


def fx_tracing() -> bool:
    """Inside ``torch.fx.symbolic_trace`` (sizes and values are proxies: no Python decision may read them)."""
    return torch.fx._symbolic_trace.is_fx_symbolic_tracing()


GEMM_MAX_TAPS = 32  # C_in·k² up to which dict_apply uses dict_apply_gemm (CPU, no autograd)


def dict_apply_gemm(z: Tensor, weight: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """``conv_transpose2d(z, W)`` as one GEMM and ``k²`` shifted adds (equal to it up to rounding).

    ``taps = Wᵀ z`` per pixel (``(C_in·k², C_out) @ (C_out, H'W')``), then ``out[c, s·y + i, s·x + j] +=
    taps[c, i, j, y, x]`` on the unpadded canvas (``s·H' + k − 1`` square), cropped by ``padding``. For a
    dictionary with few image-side taps this forward is faster than oneDNN's deconvolution on CPU and its
    backward slower (docs/benchmarks.md), so :func:`dict_apply` uses it only where no gradient is needed.
    """
    n, c_out, h, w = z.shape
    c_in, k, s = weight.shape[1], weight.shape[-1], stride
    wt = weight.reshape(c_out, -1).t().expand(n, -1, -1)
    taps = torch.bmm(wt, z.reshape(n, c_out, h * w)).reshape(n, c_in, k, k, h, w)
    canvas = taps.new_zeros(n, c_in, s * h + k - 1, s * w + k - 1)
    for i in range(k):
        for j in range(k):
            canvas[:, :, i : i + s * h : s, j : j + s * w : s] += taps[:, :, i, j]
    rows, cols = s * h + k - 1 - 2 * padding, s * w + k - 1 - 2 * padding
    return canvas[:, :, padding : padding + rows, padding : padding + cols].contiguous()

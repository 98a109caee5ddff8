"""``CSCConv2d``, the convolutional sparse coding layer (drop-in for ``nn.Conv2d``), on the shared base of
:mod:`.sparse_coding` (λ, μ, unit-norm atoms and the step-size lifecycle: init / set / track / converge, documented
there); ``SparseCodingLinear`` (``linear.py``) shares the base, ``model_ops.py`` applies it to a model.
"""

from __future__ import annotations

from typing import Unpack

import torch
import torch.nn as nn
from torch import Tensor

from . import functional as SF
from . import spectral as SP
from .fista_autograd import csc_fista_lean, lean_applies
from .sparse_coding import (CONVERGE_ITERS, CONVERGE_TOL, INIT_GRID, INIT_GRID_WIDE, INIT_WIDE, JITTER, SET_ITERS,
                            SET_TOL, TRACK_ITERS, _SparseCoding)
from ..errors import UsageError

__all__ = ["CSCConv2d", "CONVERGE_ITERS", "CONVERGE_TOL", "JITTER", "SET_ITERS", "SET_TOL", "TRACK_ITERS"]


class CSCConv2d(_SparseCoding):
    """Convolutional sparse coding layer, a drop-in replacement for ``nn.Conv2d``.

    ``forward(x)``: ``x`` ``(N, C_in, H, W)`` → sparse code ``z`` ``(N, C_out, H', W')`` (``H'`` as for
    ``nn.Conv2d`` with the same kernel, stride, padding and dilation), the solution of
    ``min_z λ‖z‖₁ + μ/2‖z‖² + ½‖x − Dz‖²`` after ``n_steps`` unrolled FISTA steps with
    ``Dz = conv_transpose2d(z, W, groups=g)`` (a grouped dictionary is block-diagonal), plus ``bias``
    when there is one (``z + b``, the conv's bias kept as an addition after the code). ``decode(y)``
    returns ``D(y − b)`` for a layer output ``y`` (shape of the ``x`` it came from). ``expansion`` (the
    official ``n_dict``) stacks that many copies of ``x`` along channels (dense layers only).
    ``kernel_size``/``stride``/``padding``/``dilation`` are ints when square, else ``(h, w)`` pairs.

    The signature is ``nn.Conv2d``'s: ``padding`` also takes ``'valid'`` (0) and ``'same'`` (stride 1 only;
    stored as the number of zeros on each side, and for an even kernel ``padding_extra`` = 1 more on the
    bottom/right, as ``nn.Conv2d`` pads it); ``padding_mode`` must be ``'zeros'`` (``D`` is the exact adjoint
    of a zero-padded convolution; other modes have another adjoint); ``device``/``dtype`` place the weights.
    λ, μ, ``n_steps``, ``non_negative``, ``expansion`` and ``power_iters`` are keyword-only
    (:class:`~.functional.CodingOptions`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: SF.IntPair,
        stride: SF.IntPair = 1,
        padding: SF.IntPair | str = 0,
        dilation: SF.IntPair = 1,
        groups: int = 1,
        bias: bool = False,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **coding: Unpack[SF.CodingOptions],
    ) -> None:
        super().__init__(device=device, dtype=dtype, **coding)
        if padding_mode != "zeros":
            raise UsageError(f"CSCConv2d supports padding_mode='zeros' only, got {padding_mode!r}: its decoder D is "
                             "the adjoint of a zero-padded convolution (conv_transpose2d); other modes have another")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise UsageError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        if groups > 1 and self.expansion > 1:
            raise UsageError("expansion > 1 applies to dense CSC layers only (groups=1)")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _square_or_pair("kernel_size", kernel_size, 1)
        self.stride = _square_or_pair("stride", stride, 1)
        self.dilation = _square_or_pair("dilation", dilation, 1)
        self.padding, self.padding_extra = _resolve_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.padding_mode = "zeros"
        kh, kw = SF._pair(self.kernel_size)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels * self.expansion // groups, kh, kw, **factory))
        self.bias = nn.Parameter(torch.zeros(out_channels, **factory)) if bias else None
        self._image_hw: tuple[int, int] | None = None  # the input size coded last: fixes the size D maps back to
        self.reset_parameters()

    def _geometry(self) -> dict:
        return {"groups": self.groups, "dilation": self.dilation, "pad_extra": self.padding_extra}

    def conv_geometry(self, image_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(code_hw, output_padding)`` of this layer on an ``image_hw`` input (:func:`~.functional.conv_geometry`)."""
        return SF.conv_geometry(image_hw, self.kernel_size, self.stride, self.padding, self.dilation, self.padding_extra)

    def _output_padding(self, image_hw: tuple[int, int] | None) -> tuple[int, int] | None:
        return None if image_hw is None else self.conv_geometry(image_hw)[1]

    def _gram(self):
        op = self._output_padding(self._image_hw)
        w = self.weight.detach().float()
        return SP.csc_gram(w, self.stride, self.padding, output_padding=op, **self._geometry())

    def _free_gram(self):
        """``DᵀD`` on a periodic grid of ``INIT_GRID`` code pixels a side (``INIT_GRID_WIDE`` for a wide filter
        bank, more where the kernel spans more)."""
        k, s, d = (SF._pair(v) for v in (self.kernel_size, self.stride, self.dilation))
        grid = INIT_GRID if self.weight.numel() <= INIT_WIDE else INIT_GRID_WIDE
        n = [max(grid, d[i] * (k[i] - 1) // s[i] + 1) for i in range(2)]
        w = self.weight.detach().float()
        gram = SP.circular_csc_gram(w, self.stride, groups=self.groups, dilation=self.dilation)
        return gram, (1, self.out_channels, *n)

    def _code_shape(self, x: Tensor) -> tuple[int, ...]:
        """``(1, C_out, H', W')`` for input ``x``; remembers ``x``'s size for the step size's ``DᵀD``."""
        self._image_hw = (int(x.shape[-2]), int(x.shape[-1]))
        return (1, self.out_channels, *self.conv_geometry(self._image_hw)[0])

    def _expand(self, x: Tensor) -> Tensor:
        return x if self.expansion == 1 else x.repeat(1, self.expansion, 1, 1)

    def _code(self, y: Tensor) -> Tensor:
        return y if self.bias is None else y - self.bias.reshape(1, -1, 1, 1)

    def _dz(self, y: Tensor, image_hw: tuple[int, int] | None) -> Tensor:
        """``D(y − b)`` onto an image of size ``image_hw`` (default: the largest the code fits, less
        ``padding_extra``)."""
        op = self._output_padding(image_hw)
        return SF.dict_apply(self._code(y), self.weight, self.stride, self.padding, output_padding=op, **self._geometry())

    def forward(self, x: Tensor) -> Tensor:
        self._prepare_forward(x)
        if self._recomputes():
            z = csc_fista_lean(x, self.weight, self._coding_step_size(), self.lmbd, self.stride, self.padding)
        else:
            z = SF.csc_fista(
                self._expand(x), self.weight, self._coding_step_size(), self._lmbd_for(x), self.mu,
                self.n_steps, self.non_negative, self.stride, self.padding, **self._geometry(),
            )
        return z if self.bias is None else z + self.bias.reshape(1, -1, 1, 1)

    def _recomputes(self) -> bool:
        """``recompute`` asked and covered: dense, undilated, square, no expansion, autograd on, no autocast."""
        square = all(isinstance(v, int) for v in (self.stride, self.padding, self.kernel_size))
        return (self.recompute and torch.is_grad_enabled() and not torch.is_autocast_enabled() and square
                and self.padding_extra == 0
                and self.groups == 1 and self.dilation == 1 and self.expansion == 1
                and lean_applies(self.lmbd, self.mu, self.n_steps, self.non_negative))

    def decode(self, y: Tensor, image_hw: tuple[int, int] | None = None) -> Tensor:
        """``D(y − b)`` for a layer output ``y`` (``(N, C_in, H, W)``; the mean over the ``expansion`` copies
        when > 1). ``image_hw`` names the input size when a stride leaves it ambiguous (odd sizes)."""
        x_hat = self._dz(y, image_hw)
        if self.expansion > 1:
            x_hat = x_hat.unflatten(1, (self.expansion, self.in_channels)).mean(1)
        return x_hat

    def reconstruction_error(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        """Per-sample ``‖x − D(y − b)‖²`` (``(N,)``) for the layer output ``y`` (``z``), coding ``x`` first when not given."""
        z = self(x) if z is None else z
        return (self._expand(x) - self._dz(z, tuple(x.shape[-2:]))).pow(2).flatten(1).sum(1)

    def objective(self, x: Tensor, z: Tensor) -> Tensor:
        """Per-sample lasso objective ``λ‖c‖₁ + μ/2‖c‖² + ½‖x − Dc‖²`` of the code ``c = z − b`` (``(N,)``)."""
        x_hat = self._dz(z, tuple(x.shape[-2:]))
        return SF.lasso_objective(self._expand(x), self._code(z), x_hat, self._lmbd_for(x), self.mu)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.padding_extra != 0:
            s += f", padding_extra={self.padding_extra}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is not None:
            s += ", bias=True"
        return f"{s}, {self.extra_repr_common()}"


def _resolve_padding(padding: object, kernel: SF.IntPair, stride: SF.IntPair, dilation: SF.IntPair,
                     ) -> tuple[SF.IntPair, SF.IntPair]:
    """``(padding, padding_extra)`` for ``nn.Conv2d``'s ``padding`` argument (ints, a pair, ``'valid'``, ``'same'``)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding != "same":
            raise UsageError(f"CSCConv2d padding must be 'valid', 'same', an int or a pair, got {padding!r}")
        if stride != 1:
            raise UsageError("CSCConv2d padding='same' is not supported for strided convolutions (as nn.Conv2d)")
        return SF.same_padding(kernel, dilation)
    return _square_or_pair("padding", padding, 0), 0


def _square_or_pair(name: str, value: object, least: int) -> int | tuple[int, int]:
    """An int ≥ ``least`` or an ``(h, w)`` pair of them (an int when both are equal); else a UsageError."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in items):
        raise UsageError(f"CSCConv2d {name} must be an int >= {least} or a pair of them, got {value!r}")
    return items[0] if items[0] == items[1] else (int(items[0]), int(items[1]))

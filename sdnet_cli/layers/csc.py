"""Sparse coding modules: ``CSCConv2d`` (drop-in for ``nn.Conv2d``) and ``SparseCodingLinear``.

Both hold a dictionary ``weight`` with unit-norm atoms and a ``step_size`` buffer ``0.9 / L``
(``L`` = largest eigenvalue of ``DᵀD`` at the size the layer sees). The step size is set on the first
forward (Lanczos), refreshed by a warm-started power iteration (``power_iters`` iterations) on each
training forward, used as stored in eval mode (a loaded checkpoint's value wins), re-converged between
training steps by :meth:`refresh_step_size` (20 warm Lanczos iterations; the engine calls it) and to
convergence by :meth:`update_step_size`. Lanczos runs eagerly (``torch.compiler.disable``); the
per-forward refresh and FISTA trace into one graph under ``torch.compile``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

from . import functional as SF
from ..errors import UsageError

# Lanczos set-ups (residual tolerance relative to L; the eigenvalue error is far smaller, ~ residual²/gap).
_CONVERGE_ITERS = 300  # update_step_size(): to convergence
_CONVERGE_TOL = 1e-6
_FIRST_ITERS = 150  # the first forward at a new input size (the official code: ≤ 50 power iterations)
_FIRST_TOL = 1e-4
_REFRESH_ITERS = 20  # refresh_step_size(): the engine's per-step refresh, a fixed count (no data-dependent stop)
_JITTER = 1e-2  # share of a fixed random direction mixed into the warm start (finds eigenvalue crossings)


class _SparseCoding(nn.Module):
    """Shared state of the sparse coding modules: λ, μ, steps, atoms, step size and its refresh."""

    step_size: Tensor

    def __init__(
        self,
        lmbd: float,
        mu: float,
        n_steps: int,
        non_negative: bool,
        expansion: int,
        power_iters: int,
    ) -> None:
        super().__init__()
        if n_steps < 1:
            raise UsageError(f"n_steps must be >= 1, got {n_steps}")
        if expansion < 1:
            raise UsageError(f"expansion must be >= 1, got {expansion}")
        self.lmbd: float | Tensor = lmbd
        self.mu = float(mu)
        self.n_steps = int(n_steps)
        self.non_negative = bool(non_negative)
        self.expansion = int(expansion)
        self.power_iters = int(power_iters)
        self.register_buffer("step_size", torch.zeros(()))
        self.register_buffer("_v", torch.zeros(0), persistent=False)
        self._step_size_ready = False

    # -- dictionary ---------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.normalize_atoms_()
        self._step_size_ready = False

    @torch.no_grad()
    def normalize_atoms_(self) -> None:
        """Rescale every atom (output filter) to unit L2 norm, in place."""
        self.weight.copy_(SF.normalize_atoms(self.weight))

    # -- step size ----------------------------------------------------------------------------
    def _gram(self):  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _code_shape(self, x: Tensor) -> tuple[int, ...]:  # pragma: no cover
        raise NotImplementedError

    @torch.compiler.disable
    @torch.no_grad()
    def _converge_step_size(
        self, code_shape: tuple[int, ...], n_iter: int = _FIRST_ITERS, tol: float = _FIRST_TOL, jitter: float = 0.0
    ) -> None:
        """Lanczos to convergence, warm from the last vector when the size is unchanged (plus ``jitter`` times
        a fixed random unit direction, so a new top eigenvector the warm vector lacks is found too).

        Runs eagerly, also under ``torch.compile``: a set-up with a data-dependent stop.
        """
        with torch.autocast(self.weight.device.type, enabled=False):
            gen = torch.Generator(device="cpu").manual_seed(0)
            if tuple(self._v.shape) != code_shape:
                self._v = torch.randn(code_shape, generator=gen).to(self.weight.device)
                jitter = 0.0
            v = self._v.float()
            if jitter:
                r = torch.randn(code_shape, generator=gen).to(v.device)
                v = v / v.norm().clamp_min(1e-30) + jitter * r / r.norm()
            eig, v = SF.lanczos(self._gram(), v, n_iter, tol)
            self._v.copy_(v)
            self.step_size.copy_(0.9 / eig)
        self._step_size_ready = True

    @torch.no_grad()
    def _warm_step_size(self, n_iter: int) -> None:
        """``n_iter`` power iterations from the last vector (the cheap per-training-step refresh; traceable)."""
        with torch.autocast(self.weight.device.type, enabled=False):
            eig, v = SF.power_iteration(self._gram(), self._v.float(), n_iter)
            self._v.copy_(v)
            self.step_size.copy_(0.9 / eig)

    def update_step_size(self, input_shape: tuple[int, ...] | None = None) -> None:
        """Recompute ``step_size = 0.9 / L`` by Lanczos run to convergence (warm from the last vector).

        ``input_shape`` is the shape of one input (without batch); by default the size seen last. In
        training mode the atoms are renormalised first, as the next training forward would do, so
        the step size is the one for the dictionary that forward uses.
        """
        self._update(input_shape, _CONVERGE_ITERS, _CONVERGE_TOL)

    def refresh_step_size(self, n_iter: int = _REFRESH_ITERS) -> None:
        """Between training steps: ``n_iter`` Lanczos iterations from the warm vector (renormalising the
        atoms first in training mode). The engine calls it after every optimizer step."""
        self._update(None, n_iter, 0.0)

    def _update(self, input_shape: tuple[int, ...] | None, n_iter: int, tol: float) -> None:
        if input_shape is not None:
            shape = self._code_shape(torch.empty((1, *input_shape), device="meta"))
        elif self._v.numel():
            shape = tuple(self._v.shape)
        else:
            raise UsageError("update_step_size() needs input_shape before the layer has seen an input")
        if self.training:
            self.normalize_atoms_()
        self._converge_step_size(shape, n_iter, tol, _JITTER)

    def _maybe_refresh(self, x: Tensor) -> None:
        if self.training:
            shape = self._code_shape(x)
            if tuple(self._v.shape) != shape:
                self._converge_step_size(shape)
            elif self.power_iters > 0:
                self._warm_step_size(self.power_iters)
        elif not self._step_size_ready:
            self._converge_step_size(self._code_shape(x))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        stored = state_dict.get(prefix + "step_size")
        self._step_size_ready = stored is not None and float(stored) > 0

    def _lmbd_for(self, x: Tensor) -> float | Tensor:
        lmbd = self.lmbd
        if isinstance(lmbd, Tensor):
            lmbd = lmbd.to(device=x.device, dtype=x.dtype)
        return lmbd

    def _train_step_prelude(self, x: Tensor) -> None:
        if self.training:
            self.normalize_atoms_()
        self._maybe_refresh(x)

    def extra_repr_common(self) -> str:
        lm = "per-sample" if isinstance(self.lmbd, Tensor) else f"{self.lmbd:g}"
        s = f"lmbd={lm}, mu={self.mu:g}, n_steps={self.n_steps}, non_negative={self.non_negative}"
        if self.expansion != 1:
            s += f", expansion={self.expansion}"
        return s


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
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: SF.IntPair,
        stride: SF.IntPair = 1,
        padding: SF.IntPair = 0,
        dilation: SF.IntPair = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        lmbd: float = 0.1,
        mu: float = 0.0,
        n_steps: int = 2,
        non_negative: bool = True,
        expansion: int = 1,
        power_iters: int = 1,
    ) -> None:
        super().__init__(lmbd, mu, n_steps, non_negative, expansion, power_iters)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise UsageError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        if groups > 1 and expansion > 1:
            raise UsageError("expansion > 1 applies to dense CSC layers only (groups=1)")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _square_or_pair("kernel_size", kernel_size, 1)
        self.stride = _square_or_pair("stride", stride, 1)
        self.padding = _square_or_pair("padding", padding, 0)
        self.dilation = _square_or_pair("dilation", dilation, 1)
        kh, kw = SF._pair(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels * expansion // groups, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._image_hw: tuple[int, int] | None = None  # the input size coded last: fixes the size D maps back to
        self.reset_parameters()

    def _geometry(self) -> dict:
        return {"groups": self.groups, "dilation": self.dilation}

    def _output_padding(self, image_hw: tuple[int, int] | None) -> tuple[int, int] | None:
        if image_hw is None:
            return None
        return SF.adjoint_output_padding(image_hw, self.kernel_size, self.stride, self.padding, self.dilation)

    def _gram(self):
        op = self._output_padding(self._image_hw)
        return SF.csc_gram(self.weight.float(), self.stride, self.padding, output_padding=op, **self._geometry())

    def _code_shape(self, x: Tensor) -> tuple[int, ...]:
        """``(1, C_out, H', W')`` for input ``x``; remembers ``x``'s size for the step size's ``DᵀD``."""
        self._image_hw = (int(x.shape[-2]), int(x.shape[-1]))
        k, s, p, d = (SF._pair(v) for v in (self.kernel_size, self.stride, self.padding, self.dilation))
        hw = [(n + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i, n in enumerate(self._image_hw)]
        return (1, self.out_channels, *hw)

    def _expand(self, x: Tensor) -> Tensor:
        return x if self.expansion == 1 else x.repeat(1, self.expansion, 1, 1)

    def _code(self, y: Tensor) -> Tensor:
        return y if self.bias is None else y - self.bias.reshape(1, -1, 1, 1)

    def _dz(self, y: Tensor, image_hw: tuple[int, int] | None) -> Tensor:
        """``D(y − b)`` onto an image of size ``image_hw`` (default: the largest the code fits)."""
        op = self._output_padding(image_hw)
        return SF.dict_apply(self._code(y), self.weight, self.stride, self.padding, output_padding=op, **self._geometry())

    def forward(self, x: Tensor) -> Tensor:
        self._train_step_prelude(x)
        z = SF.csc_fista(
            self._expand(x), self.weight, self.step_size, self._lmbd_for(x), self.mu,
            self.n_steps, self.non_negative, self.stride, self.padding, **self._geometry(),
        )
        return z if self.bias is None else z + self.bias.reshape(1, -1, 1, 1)

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
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is not None:
            s += ", bias=True"
        return f"{s}, {self.extra_repr_common()}"


def _square_or_pair(name: str, value: object, least: int) -> int | tuple[int, int]:
    """An int ≥ ``least`` or an ``(h, w)`` pair of them (an int when both are equal); else a UsageError."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in items):
        raise UsageError(f"CSCConv2d {name} must be an int >= {least} or a pair of them, got {value!r}")
    return items[0] if items[0] == items[1] else (int(items[0]), int(items[1]))


class SparseCodingLinear(_SparseCoding):
    """Sparse coding over the last dimension (the official 1-D layer): ``(N, D)`` or ``(N, T, D)`` → ``(…, K)``.

    Dictionary ``D = weightᵀ`` (``weight`` ``(K, D·expansion)``); ``z = argmin λ‖z‖₁ + μ/2‖z‖² + ½‖x − Dz‖²``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        lmbd: float = 0.1,
        mu: float = 0.0,
        n_steps: int = 2,
        non_negative: bool = True,
        expansion: int = 1,
        power_iters: int = 1,
    ) -> None:
        super().__init__(lmbd, mu, n_steps, non_negative, expansion, power_iters)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features * expansion))
        self.reset_parameters()

    def _gram(self):
        return SF.linear_gram(self.weight.float())

    def _code_shape(self, x: Tensor) -> tuple[int, ...]:
        return (1, self.out_features)

    def _flat(self, x: Tensor) -> Tensor:
        if x.dim() not in (2, 3):
            raise UsageError(f"SparseCodingLinear expects (N, D) or (N, T, D) input, got shape {tuple(x.shape)}")
        x = x.reshape(-1, x.shape[-1])
        return x if self.expansion == 1 else x.repeat(1, self.expansion)

    def _flat_lmbd(self, x: Tensor) -> float | Tensor:
        lmbd = self._lmbd_for(x)
        if isinstance(lmbd, Tensor) and lmbd.numel() > 1 and x.dim() == 3:
            lmbd = lmbd.reshape(-1, 1).repeat_interleave(x.shape[1], 0)
        elif isinstance(lmbd, Tensor) and lmbd.numel() > 1:
            lmbd = lmbd.reshape(-1, 1)
        return lmbd

    def forward(self, x: Tensor) -> Tensor:
        self._train_step_prelude(x)
        z = SF.linear_fista(
            self._flat(x), self.weight, self.step_size.to(x.dtype), self._flat_lmbd(x), self.mu,
            self.n_steps, self.non_negative,
        )
        return z.reshape(*x.shape[:-1], self.out_features)

    def decode(self, z: Tensor) -> Tensor:
        """``D z`` over the last dimension: ``(…, K)`` → ``(…, D)``."""
        x_hat = z @ self.weight
        if self.expansion > 1:
            x_hat = x_hat.unflatten(-1, (self.expansion, self.in_features)).mean(-2)
        return x_hat

    def objective(self, x: Tensor, z: Tensor) -> Tensor:
        """Per-row lasso objective, shape ``(M,)`` with ``M`` = rows of the flattened input."""
        xf, zf = self._flat(x), z.reshape(-1, self.out_features)
        return SF.lasso_objective(xf, zf, zf @ self.weight, self._flat_lmbd(x), self.mu)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {self.extra_repr_common()}"


def csc_layers(model: nn.Module) -> list[_SparseCoding]:
    """All sparse coding layers of ``model`` in module order."""
    return [m for m in model.modules() if isinstance(m, _SparseCoding)]


def set_lmbd(model: nn.Module, lmbd: float | Tensor, layers: str = "first") -> None:
    """Set λ of the first (``layers='first'``) or of every (``'all'``) sparse coding layer of ``model``."""
    found = csc_layers(model)
    if not found:
        raise UsageError("the model has no CSC layer: λ can only be set on an SDNet")
    if layers not in ("first", "all"):
        raise UsageError(f"layers must be 'first' or 'all', got {layers!r}")
    for layer in found[:1] if layers == "first" else found:
        layer.lmbd = lmbd


def update_step_sizes(model: nn.Module, converge: bool = True) -> None:
    """On every sparse coding layer that has seen an input: :meth:`update_step_size` (to convergence), or
    with ``converge=False`` the cheaper :meth:`refresh_step_size` (a fixed number of warm iterations)."""
    for layer in csc_layers(model):
        if not layer._v.numel():
            continue
        if converge:
            layer.update_step_size()
        else:
            layer.refresh_step_size()

"""The shared base of the sparse coding modules (``CSCConv2d`` in ``csc.py``, ``SparseCodingLinear`` in
``linear.py``): λ, μ, steps, unit-norm atoms and the step-size lifecycle. A subclass supplies its operator
(``_gram``: ``v ↦ DᵀD v`` on one code, ``_free_gram``: the size-free one) and ``_code_shape``.

Both hold a dictionary ``weight`` and a ``step_size`` buffer ``s = 0.9 / L`` (``L`` = largest eigenvalue of
``DᵀD`` at the input size the layer sees; FISTA converges for ``s < 1/L``).

**Atoms.** Each atom (output filter) is kept at unit L2 norm (the official ``w_norm``): at construction, at the
start of every training forward and before a training-mode track or converge (:meth:`normalize_atoms_`). An
optimizer step breaks unit norm and ``L`` scales with its square, so a forward codes with, and its step size is
computed for, the renormalised dictionary. Eval mode never touches the weights.

**Step-size lifecycle** (four words; the only public ones):

* **init** — at construction (and :meth:`reset_parameters`) ``step_size = 0.9 / L`` of the dictionary's
  periodic operator (``DᵀD`` on an 8×8-code torus, 4×4 for wide layers: the top of its spectrum over
  frequencies, which every input size's ``L`` approaches from below; :meth:`init_step_size`). So a fresh layer
  codes in eval mode, and traces and exports (fx, ``torch.export``, ONNX, ``torch.compile(fullgraph=True)``),
  with nothing solved in ``forward``.
* **set** — the first training forward at a new input size runs Lanczos to a ~1e-4 residual (eagerly, also
  under ``torch.compile``: it has a data-dependent stop). Eval mode never sets: it codes with the stored
  ``step_size`` (a loaded checkpoint's, the value the model was trained with, or the init one).
* **track** — each training forward runs ``power_iters`` warm-started power iterations (default 1), and
  :meth:`track_step_size` runs a fixed number of warm Lanczos iterations (plus 1 % of a fixed random
  direction, so an eigenvector overtaking the tracked one is found); the engine's keeper calls it after
  optimizer steps on a fixed schedule (``engine/step_sizes.py``; :func:`~.model_ops.track_step_sizes` does every
  layer). Fixed counts on the device: no host read, no synchronisation, and both trace into one graph
  under ``torch.compile(fullgraph=True)``.
* **converge** — :meth:`converge_step_size` / :func:`~.model_ops.converge_step_sizes`: Lanczos to a 1e-6 residual, on
  demand (the engine: before each evaluation). The earlier names ``update_step_size`` / ``update_step_sizes``
  still call them and warn once (:mod:`sdnet_cli.deprecations`).

Buffers a forward replaces are normal tensors even under ``torch.inference_mode``. The tracked vector ``_v``
(top eigenvector estimate, one code's shape) is a non-persistent buffer that training state saves, so a resumed
run continues exactly; ``_step_size_ready`` (set, or loaded: :meth:`_load_from_state_dict`) lets eval forwards
decide without reading the device.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
from torch import Tensor

from . import functional as SF
from . import spectral as SP
from ..deprecations import deprecated_alias
from ..errors import UsageError

# Lanczos (residual tolerance relative to L; the eigenvalue error is far smaller, ~ residual²/gap).
CONVERGE_ITERS, CONVERGE_TOL = 300, 1e-6  # converge_step_size()
SET_ITERS, SET_TOL = 150, 1e-4  # the first forward at a new input size (the official code: ≤ 50 power iterations)
TRACK_ITERS = 20  # track_step_size(): warm Lanczos iterations, a fixed count (fewer lag: docs/benchmarks.md)
INIT_GRID = 8  # init_step_size(): code pixels a side of the periodic grid its L is taken on (CSCConv2d) …
INIT_GRID_WIDE, INIT_WIDE = 4, 2**16  # … 4 where a filter bank has more than 2^16 weights (the spectrum is flatter)
INIT_ITERS = 20  # init_step_size(): Lanczos iterations on the size-free (periodic) operator of a fresh dictionary …
INIT_ITERS_HUGE, INIT_HUGE = 12, 2**20  # … 12 above 2^20 weights (error and time saved: docs/benchmarks.md)
JITTER = 1e-2  # share of a fixed random direction mixed into a tracked start (finds eigenvalue crossings)


class _SparseCoding(nn.Module):
    """Shared state of the sparse coding modules: λ, μ, steps, atoms, and the step-size lifecycle."""

    step_size: Tensor

    def __init__(self, *, lmbd: float = 0.1, mu: float = 0.0, n_steps: int = 2, non_negative: bool = True, expansion: int = 1,
                 power_iters: int = 1, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
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
        self.recompute = False  # memory: save less for backward, recompute it (CSCConv2d; docs/benchmarks.md)
        self.register_buffer("step_size", torch.zeros((), device=device, dtype=dtype))
        self.register_buffer("_v", torch.zeros(0, device=device), persistent=False)  # tracked top eigenvector
        self.register_buffer("_r", torch.zeros(0, device=device), persistent=False)  # fixed random direction (jitter)
        self._init_version: int | None = None  # the weights' version an init step size was made for
        self._forward_version: int | None = None  # weights a training forward renormalised (a 2nd keeps them)
        self._step_size_ready = False
        self.step_size_external = False  # set from outside (set_step_size): forward never sets, inits or tracks it

    @property
    def _step_size_ready(self) -> bool:
        """The buffer holds a step size to code with (init, set, loaded, or written by whoever sets this)."""
        return self._ready

    @_step_size_ready.setter
    def _step_size_ready(self, value: bool) -> None:
        self._ready = bool(value)
        self._init_version = None  # whoever declares it ready (set, load, a training state, a hook) owns it now

    # -- dictionary ---------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.normalize_atoms_()
        self.init_step_size()

    @torch.no_grad()
    def normalize_atoms_(self) -> None:
        """Rescale every atom (output filter) to unit L2 norm, in place (see *Atoms* in the module docs)."""
        if SF.fx_tracing():  # an fx graph runs without this no_grad: write through a detached alias
            w = self.weight.detach()
            w.copy_(SF.normalize_atoms(w))
            return
        self.weight.copy_(SF.normalize_atoms(self.weight))

    def _normalize_for_forward(self) -> None:
        """:meth:`normalize_atoms_`, eagerly skipped for the weights the last training forward renormalised."""
        eager = not (SF.fx_tracing() or torch.compiler.is_compiling())
        if eager and self._forward_version == self.weight._version:
            return
        self.normalize_atoms_()
        if eager:
            self._forward_version = self.weight._version

    def _coding_step_size(self) -> Tensor:
        """In training a copy: the next training forward tracks the buffer in place; this graph keeps its value."""
        return self.step_size.clone() if self.training else self.step_size

    def _gram(self):  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _code_shape(self, x: Tensor) -> tuple[int, ...]:  # pragma: no cover
        raise NotImplementedError

    def _free_gram(self):  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    # -- step size: the public lifecycle --------------------------------------------------------
    def init_step_size(self) -> None:
        """**init**: ``step_size = 0.9 / L`` of the current dictionary at no particular input size (``L`` of its
        size-free operator: ``_free_gram``), so a fresh layer codes, traces and exports without a solve.

        Run at construction and by :meth:`reset_parameters`; an eager eval forward runs it again when the
        weights of a layer whose step size was never set changed since (e.g. copied in by ``convert``). Eager:
        at most ``INIT_ITERS`` Lanczos iterations to the set-up's tolerance (time per layer: docs/benchmarks.md).
        Leaves the tracked vector alone, so the first training forward still sets the step size at the
        size it codes. Nothing on the meta device.
        """
        if self.step_size.device.type == "meta":
            self._step_size_ready = False
            return
        with torch.no_grad(), _normal_tensors(), torch.autocast(self.step_size.device.type, enabled=False):
            gram, shape = self._free_gram()
            n_iter = INIT_ITERS if self.weight.numel() <= INIT_HUGE else INIT_ITERS_HUGE
            eig, _ = SP.lanczos(gram, self._fixed_random(shape, seed=2), n_iter, SET_TOL)
            self.step_size.copy_(0.9 / eig)
        self._step_size_ready = True
        self._init_version = self.weight._version  # an eager eval forward re-inits when the weights changed

    def track_step_size(self, n_iter: int = TRACK_ITERS) -> None:
        """**track**: ``n_iter`` warm Lanczos iterations from the tracked vector (atoms renormalised first in
        training mode). A fixed count on the device: no host read; traceable. Needs a set step size."""
        if not self._v.numel():
            raise UsageError("track_step_size() needs a step size set first (a forward, or converge_step_size)")
        if self.training:
            self.normalize_atoms_()
        self._track(n_iter, lanczos=True)

    def converge_step_size(self, input_shape: tuple[int, ...] | None = None) -> None:
        """**converge**: ``step_size = 0.9 / L`` by Lanczos to a 1e-6 residual, warm from the tracked vector.

        ``input_shape`` is the shape of one input (without batch); by default the size seen last. In
        training mode the atoms are renormalised first, as the next training forward would do.
        """
        if input_shape is not None:
            shape = self._code_shape(torch.empty((1, *input_shape), device="meta"))
        elif self._v.numel():
            shape = tuple(self._v.shape)
        else:
            raise UsageError("converge_step_size() needs input_shape before the layer has seen an input")
        if self.training:
            self.normalize_atoms_()
        self._set(shape, CONVERGE_ITERS, CONVERGE_TOL)

    update_step_size = deprecated_alias(converge_step_size, "update_step_size")

    @property
    def tracked_vector(self) -> Tensor:
        """The top eigenvector estimate the step size is tracked from (one code; empty before any input size)."""
        return self._v

    @torch.no_grad()
    def set_step_size(self, step_size: float, v: Tensor | None = None) -> None:
        """**set** from outside (a hook, a training state): ``step_size`` as given and, when given, ``v`` (one code)
        as the tracked vector. Eval forwards code with it as set (no init). With ``step_size_external = True``
        no forward sets, inits or tracks the step size (training forwards still renormalise the atoms)."""
        if v is not None:
            if tuple(self._v.shape) == tuple(v.shape) and self._v.dtype == v.dtype:
                self._v.copy_(v)
            else:
                with _normal_tensors():  # a normal tensor even when set under inference_mode
                    self._v = v.clone()
        self.step_size.fill_(step_size)
        self._step_size_ready = True

    # -- step size: private steps ---------------------------------------------------------------
    @torch.compiler.disable
    @torch.no_grad()
    def _set(self, code_shape: tuple[int, ...], n_iter: int, tol: float) -> None:
        """Lanczos to ``tol`` (eager: data-dependent stop); warm, with jitter, when the size is unchanged,
        else from a fixed random vector (and a new jitter direction) for the new size."""
        with torch.autocast(self.step_size.device.type, enabled=False), _normal_tensors():
            if tuple(self._v.shape) != code_shape:
                self._v = self._fixed_random(code_shape, seed=0)
                self._jittered_start()  # makes the size's jitter direction now, outside any compiled graph
                start = self._v.float()
            else:
                start = self._jittered_start()
            eig, v = SP.lanczos(self._gram(), start, n_iter, tol)
            self._v.copy_(v)
            self.step_size.copy_(0.9 / eig)
        self._step_size_ready = True

    @torch.no_grad()
    def _track(self, n_iter: int, lanczos: bool) -> None:
        """``n_iter`` warm iterations, Lanczos (with jitter) or power iteration; device-only, traceable."""
        with torch.autocast(self.step_size.device.type, enabled=False):
            if lanczos:
                eig, v = SP.lanczos(self._gram(), self._jittered_start(), n_iter)
            else:
                eig, v = SP.power_iteration(self._gram(), self._v.float(), n_iter)
            self._v.copy_(v)
            self.step_size.copy_(0.9 / eig)

    def _fixed_random(self, shape: tuple[int, ...], seed: int) -> Tensor:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        return torch.randn(shape, generator=gen).to(self.step_size.device)

    def _jittered_start(self) -> Tensor:
        """``v/‖v‖ + JITTER·r/‖r‖`` with ``r`` fixed per size (made once, then kept on the device)."""
        if self._r.shape != self._v.shape:
            with _normal_tensors():
                r = self._fixed_random(tuple(self._v.shape), seed=1)
                self._r = r / r.norm()
        v = self._v.float()
        return v / v.norm().clamp_min(1e-30) + JITTER * self._r.float()

    def _prepare_forward(self, x: Tensor) -> None:
        """Before coding ``x``: in training, renormalise the atoms, then set (new size) or track the step
        size; in eval, code with the stored step size (init it first, eagerly, when there is none or the
        weights of a never-set layer changed). Traced symbolically (fx, ``torch.export``), a training
        forward cannot read ``x``'s size: it tracks at the size set last (if any) and sets nothing. An external step
        size (``step_size_external``) is left alone."""
        if self.training:
            self._normalize_for_forward()
            if self.step_size_external:
                return
            if _symbolic():
                if self._v.numel() and self.power_iters > 0:
                    self._track(self.power_iters, lanczos=False)
                return
            shape = self._code_shape(x)
            if tuple(self._v.shape) != shape:
                self._set(shape, SET_ITERS, SET_TOL)
            elif self.power_iters > 0:
                self._track(self.power_iters, lanczos=False)
        elif not (self.step_size_external or _symbolic() or torch.compiler.is_compiling() or torch.jit.is_tracing()) and (
                not self._step_size_ready or self._init_version not in (None, self.weight._version)):
            self.init_step_size()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        """A loaded positive ``step_size`` is ready: eval forwards use it as stored (not re-set); a state
        without one (or with 0: never set) leaves the layer to init it from the loaded weights."""
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        stored = state_dict.get(prefix + "step_size")
        self._step_size_ready = stored is not None and float(stored) > 0

    def _lmbd_for(self, x: Tensor) -> float | Tensor:
        lmbd = self.lmbd
        if isinstance(lmbd, Tensor):
            lmbd = lmbd.to(device=x.device, dtype=x.dtype)
        return lmbd

    def extra_repr_common(self) -> str:
        lmbd = "per-sample" if isinstance(self.lmbd, Tensor) else f"{self.lmbd:g}"
        s = f"lmbd={lmbd}, mu={self.mu:g}, n_steps={self.n_steps}, non_negative={self.non_negative}"
        if self.expansion != 1:
            s += f", expansion={self.expansion}"
        return s


def _symbolic() -> bool:
    """Traced with symbolic sizes or values: ``torch.fx`` symbolic tracing or ``torch.export``."""
    return SF.fx_tracing() or torch.compiler.is_exporting()


def _normal_tensors() -> contextlib.AbstractContextManager:
    """Tensors made inside are normal ones even under ``torch.inference_mode`` (buffers a later training
    forward updates in place must never be inference tensors)."""
    return torch.inference_mode(False) if torch.is_inference_mode_enabled() else contextlib.nullcontext()

"""``train.step_size=official``: every CSC layer's step size set as the official SDNet code sets it.

The official ``train.py`` calls ``model.update_stepsize()`` before every forward, training and validation
alike (``Lib/cls_function.py``); each ``DictBlock`` then runs ``power_iteration`` on its atoms **as they
are** — after the last optimizer step, *before* the forward renormalises them (``normalize_weight``) — and
sets ``step_size = 0.9 / λ``:

* ``v`` = the last call's vector (``v_max``), or on the first call a standard normal ``(1, C_out, H', W')``
  (one code); ``k = 0``, ``err = 1e5``;
* while ``k < 50 and err > 1e-5``: ``v' = normalize(Dᵀ D v)`` (``D`` = ``conv_transpose2d``, ``Dᵀ`` = ``conv2d``
  with the layer's stride and padding), ``err = Σ (v' − v)²``, ``k += 1``, ``v = v'``;
* ``λ = ‖D v‖²`` (``v`` has unit norm), ``step_size = 0.9 / λ``; the forward then renormalises the atoms and
  codes with them.

The atoms an optimizer step leaves have norms ≠ 1, so this step size is off the exact ``0.9 / L`` of the
renormalised dictionary (by how much on the CIFAR recipe: docs/benchmarks.md); after 50 iterations without
convergence it is off as well. :class:`OfficialStepSizes` reproduces it with a forward pre-hook on each
CSC layer that does the above and sets the layer's step size from outside (``set_step_size``: the step size
and ``v`` as the layer's tracked vector, so a run's saved state resumes it exactly); in eval mode, where our
layer leaves the atoms alone, the hook renormalises them as the official forward does. The layers' own
set / init / track is off for the run (``step_size_external``; the engine's keeper is off too) and a post-hook
checks that the forward coded with the step size the hook set.

The first vectors come from a CPU generator seeded with the run's seed, one draw per layer in the order the
layers first run (module order in the registry models), in the weights' dtype; the official code draws them
from torch's global generator at its first ``update_stepsize()``, in module order. Everything is computed in
the weights' dtype without autocast (the official code has none).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..errors import UsageError
from ..layers import CSCConv2d, csc_layers
from ..layers import functional as SF

MAX_ITERS, TOL, FACTOR = 50, 1.0e-5, 0.9  # the official power_iteration and update_stepsize


def _geometry(layer: CSCConv2d, output_padding: tuple[int, int]) -> dict[str, Any]:
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                output_padding=output_padding)


def apply_d(v: Tensor, weight: Tensor, g: dict[str, Any]) -> Tensor:
    """``D v = conv_transpose2d(v, W)``: code ``(1, C_out, H', W')`` → image ``(1, C_in·expansion, H, W)``."""
    return F.conv_transpose2d(v, weight, None, g["stride"], g["padding"], g["output_padding"], g["groups"],
                              g["dilation"])


def apply_dt(x: Tensor, weight: Tensor, g: dict[str, Any]) -> Tensor:
    """``Dᵀ x = conv2d(x, W)``: image → code."""
    return F.conv2d(x, weight, None, g["stride"], g["padding"], g["dilation"], g["groups"])


@torch.no_grad()
def official_power_iteration(weight: Tensor, v: Tensor, g: dict[str, Any]) -> tuple[float, Tensor]:
    """The official ``power_iteration``: at most 50 iterations ``v ← normalize(DᵀD v)`` while
    ``Σ(v_new − v)² > 1e-5``, from ``v`` (not normalised first); returns ``(‖D v‖², v)``."""
    k, err = 0, torch.tensor(1.0e5)
    while k < MAX_ITERS and bool(err > TOL):
        nxt = apply_dt(apply_d(v, weight, g), weight, g)
        nxt = F.normalize(nxt.reshape(-1), dim=0, p=2).view(v.shape)
        err = torch.sum((nxt - v) ** 2)
        k += 1
        v = nxt
    return torch.sum(apply_d(v, weight, g) ** 2).item(), v


class OfficialStepSizes:
    """Hooks that give every CSC layer of ``model`` the official step size before each of its forwards.

    :meth:`remove` takes the hooks off and gives the layers back their own step-size lifecycle.
    """

    def __init__(self, model: nn.Module, seed: int) -> None:
        layers = csc_layers(model)
        others = sorted({type(m).__name__ for m in layers if not isinstance(m, CSCConv2d)})
        if others:
            raise UsageError(f"train.step_size=official covers CSCConv2d layers only; this model has {', '.join(others)}")
        if any(SF._pair(m.padding_extra) != (0, 0) for m in layers):
            raise UsageError("train.step_size=official covers evenly padded CSC layers only (the official geometry); "
                             "this model has a layer padded 'same' with an even kernel")
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.set: dict[int, float] = {}  # id(layer) -> the step size its current forward must code with
        self._external = {id(m): m.step_size_external for m in layers}
        self._layers = layers
        self._handles = []
        for layer in layers:
            layer.step_size_external = True
            self._handles.append(layer.register_forward_pre_hook(self._before))
            self._handles.append(layer.register_forward_hook(self._after))

    def remove(self) -> None:
        """Take the hooks off; the layers set, init and track their step size themselves again."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for layer in self._layers:
            layer.step_size_external = self._external[id(layer)]

    def _start(self, layer: CSCConv2d, shape: tuple[int, ...]) -> Tensor:
        """The last vector of this size, else a standard normal draw (the official first ``v``)."""
        w = layer.weight
        v = layer.tracked_vector
        if tuple(v.shape) == shape and v.dtype == w.dtype:
            return v.clone()
        return torch.randn(shape, generator=self.generator, dtype=w.dtype).to(w.device)

    @torch.compiler.disable
    def _before(self, layer: CSCConv2d, args: tuple[Any, ...]) -> None:
        x = args[0]
        code_hw, output_padding = layer.conv_geometry((int(x.shape[-2]), int(x.shape[-1])))
        g = _geometry(layer, output_padding)
        shape = (1, layer.out_channels, *code_hw)
        with torch.autocast(layer.weight.device.type, enabled=False):
            w = layer.weight.detach()
            lipschitz, v = official_power_iteration(w, self._start(layer, shape), g)
        layer.set_step_size(FACTOR / lipschitz, v)  # forwards code with it as set (step_size_external)
        if not layer.training:
            layer.normalize_atoms_()  # the official forward renormalises in eval too; ours does only in training
        self.set[id(layer)] = float(layer.step_size)

    @torch.compiler.disable
    def _after(self, layer: CSCConv2d, args: tuple[Any, ...], out: Tensor) -> None:
        if float(layer.step_size) != self.set[id(layer)]:
            raise RuntimeError("a CSC layer replaced the official step size during its forward "
                               "(train.step_size=official relies on step_size_external)")

"""The model an attack sees: pixels ``u ∈ [0, 1]`` → logits, normalisation and test-time λ inside.

``AttackedModel(model, mean, std, defence)`` computes ``model((u − mean) / std)`` with the first (or every)
CSC layer at the defence's λ:

- :class:`FixedLmbd` — one λ for every input (``None``: the model as it is, e.g. a plain ResNet);
- :class:`FrozenRule` — the per-sample λ rule evaluated once on the *clean* images and frozen: each input
  gets the λ of its nearest clean image (ℓ∞), so the attack sees a model whose λ does not react to the
  perturbation. This is the non-adaptive attack;
- :class:`AdaptiveRule` — the defence as it runs at test time, end to end: ``r(u) = ‖x₀ − D z‖²`` of the
  first CSC layer at the probe λ (FISTA unrolled, differentiable in ``u``), ``λ(u) = clip(a·r(u) + b)`` with
  a straight-through clip (forward clipped; backward the identity, BPDA — Athalye et al. 2018 — since the
  clip's zero gradient would hide the rule from the attack), then the model at ``λ(u)``. This is the
  adaptive attack (Tramèr et al. 2020): the λ rule is part of the attacked model.

A pixel ``u`` is the model's own input range; the attacks never see normalised values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from ..layers.csc import CSCConv2d
from .accuracy import first_csc, lmbd_override
from .lmbd_fit import LmbdFit


@dataclass(frozen=True)
class FixedLmbd:
    """One λ for every input (``None``: as the model is)."""

    lmbd: float | None
    layers: str = "first"


@dataclass(frozen=True)
class FrozenRule:
    """Per-sample λ fixed on the clean pixels ``clean`` ``(N, C, H, W)``: ``lmbd`` ``(N,)``."""

    clean: Tensor
    lmbd: Tensor
    layers: str = "first"


@dataclass(frozen=True)
class AdaptiveRule:
    """The per-sample λ rule ``λ(u) = clip(a·r(u) + b)`` computed on every input, differentiably."""

    fit: LmbdFit


Defence = FixedLmbd | FrozenRule | AdaptiveRule


class _StopAfterFirst(Exception):
    """Raised by the probe hook once the first CSC layer has run (the rest of the network is not needed)."""


def straight_through_clip(v: Tensor, low: float, high: float) -> Tensor:
    """``clip(v, low, high)`` in the forward pass, the identity in the backward pass (BPDA)."""
    return v + (v.clamp(low, high) - v).detach()


def probe_error(model: nn.Module, x: Tensor, layer: CSCConv2d, probe_lmbd: float) -> Tensor:
    """``‖x₀ − D z‖²`` ``(N,)`` of ``layer`` (the first CSC layer) at λ = ``probe_lmbd`` on normalised ``x``,
    differentiable in ``x``; runs the network only up to that layer."""
    out: list[Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], z: Tensor) -> None:
        out.append(module.reconstruction_error(inputs[0], z))
        raise _StopAfterFirst

    handle = layer.register_forward_hook(hook)
    try:
        with lmbd_override(model, probe_lmbd, "first"):
            model(x)
    except _StopAfterFirst:
        pass
    finally:
        handle.remove()
    assert out, "the first CSC layer did not run"
    return out[0]


class AttackedModel(nn.Module):
    """``u ↦ logits`` of ``model`` under ``defence`` (see the module doc). Always in eval mode: ``train()``
    is refused silently, so an attack that restores a "training" flag never switches BatchNorm to batch
    statistics or lets the CSC layers renormalise their atoms."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], defence: Defence) -> None:
        super().__init__()
        self.model = model
        self.defence = defence
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.layer = first_csc(model)
        if not isinstance(defence, FixedLmbd) and self.layer is None:
            raise ValueError("a per-sample λ defence needs a model with a CSC layer")
        self.eval()

    def train(self, mode: bool = True) -> "AttackedModel":
        return super().train(False)

    def lmbd_for(self, u: Tensor, x: Tensor) -> float | Tensor | None:
        """The λ the defence uses for pixels ``u`` (normalised ``x``): float, ``(N, 1, 1, 1)`` or None."""
        d = self.defence
        if isinstance(d, FixedLmbd):
            return d.lmbd
        if isinstance(d, FrozenRule):
            clean = d.clean.to(u.device).flatten(1)
            nearest = torch.cdist(u.detach().flatten(1), clean, p=float("inf")).argmin(1)
            return d.lmbd.to(u.device)[nearest].view(-1, 1, 1, 1)
        fit = d.fit
        assert self.layer is not None
        r = probe_error(self.model, x, self.layer, fit.probe_lmbd)
        lmbd = straight_through_clip(fit.slope * r + fit.intercept, fit.lmbd_min, fit.lmbd_max)
        return lmbd.view(-1, 1, 1, 1)

    def forward(self, u: Tensor) -> Tensor:
        x = (u - self.mean) / self.std
        d = self.defence
        layers = d.fit.layers if isinstance(d, AdaptiveRule) else d.layers
        with lmbd_override(self.model, self.lmbd_for(u, x), layers):
            return self.model(x)

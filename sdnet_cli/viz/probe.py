"""Capture what every CSC layer of a model sees and produces, with forward hooks.

``csc_io(model, x)`` runs one forward pass and returns, per CSC layer in module order, its input
``x_l`` ``(N, C_in, H, W)`` and its code ``z_l = layer(x_l)`` ``(N, C_out, H', W')``. Nothing in the
model is changed; the hooks are removed even when the forward raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from ..layers import model_ops
from ..layers.csc import CSCConv2d
from ..errors import UsageError


@dataclass
class CodeRecord:
    """One CSC layer's input and sparse code for a batch."""

    name: str
    layer: CSCConv2d
    input: Tensor
    code: Tensor


def named_csc_layers(model: nn.Module) -> list[tuple[str, CSCConv2d]]:
    """``(module name, layer)`` for every :class:`CSCConv2d` of ``model`` in module order."""
    return model_ops.named_csc_layers(model, CSCConv2d)


def require_csc(model: nn.Module) -> list[tuple[str, CSCConv2d]]:
    """Like :func:`named_csc_layers` but raise ``ValueError`` when the model has no CSC layer."""
    found = named_csc_layers(model)
    if not found:
        raise UsageError(
            f"{type(model).__name__} has no CSC layer: dictionaries, codes and FISTA can only be shown for "
            "an SDNet (sdnet18, sdnet18_all, ...)"
        )
    return found


@torch.no_grad()
def csc_io(model: nn.Module, x: Tensor, upto: int | None = None) -> list[CodeRecord]:
    """Run ``model(x)`` and return every CSC layer's input and code (the first ``upto`` layers only if given)."""
    layers = require_csc(model)
    if upto is not None:
        layers = layers[:upto]
    records: list[CodeRecord] = []

    class _Stop(Exception):
        pass

    def make_hook(name: str, layer: CSCConv2d):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            records.append(CodeRecord(name, layer, inputs[0].detach(), output.detach()))
            if upto is not None and len(records) >= len(layers):
                raise _Stop

        return hook

    handles = [layer.register_forward_hook(make_hook(n, layer)) for n, layer in layers]
    try:
        model(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return records

"""The sparse coding layers of a model: find them, set their λ, track or converge their step sizes.

The words are those of the step-size lifecycle in :mod:`.sparse_coding` (init / set / track / converge);
``update_step_sizes`` is the deprecated name of :func:`converge_step_sizes`.
"""

from __future__ import annotations

from typing import TypeVar

import torch.nn as nn
from torch import Tensor

from ..errors import UsageError
from ..deprecations import deprecated_alias
from .sparse_coding import TRACK_ITERS, _SparseCoding


LayerT = TypeVar("LayerT", bound=_SparseCoding)


def named_csc_layers(model: nn.Module, kind: type[LayerT] = _SparseCoding) -> list[tuple[str, LayerT]]:  # type: ignore[assignment]
    """``(name, layer)`` for every sparse coding layer of ``model`` (of ``kind``, e.g. ``CSCConv2d`` only) in module
    order, each once. The one search for CSC layers."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kind)]


def csc_layers(model: nn.Module, kind: type[LayerT] = _SparseCoding) -> list[LayerT]:  # type: ignore[assignment]
    """The layers of :func:`named_csc_layers` (all sparse coding layers of ``model``, or those of ``kind``)."""
    return [m for _, m in named_csc_layers(model, kind)]


def set_lmbd(model: nn.Module, lmbd: float | Tensor, layers: str = "first") -> None:
    """Set λ of the first (``layers='first'``) or of every (``'all'``) sparse coding layer of ``model``."""
    found = csc_layers(model)
    if not found:
        raise UsageError("the model has no CSC layer: λ can only be set on an SDNet")
    if layers not in ("first", "all"):
        raise UsageError(f"layers must be 'first' or 'all', got {layers!r}")
    for layer in found[:1] if layers == "first" else found:
        layer.lmbd = lmbd


def track_step_sizes(model: nn.Module, n_iter: int = TRACK_ITERS) -> None:
    """**track** every sparse coding layer of ``model`` that has a step size (:meth:`~_SparseCoding.track_step_size`):
    a fixed number of warm Lanczos iterations each, no host read. Call it after an optimizer step."""
    for layer in csc_layers(model):
        if layer.tracked_vector.numel():
            layer.track_step_size(n_iter)


def converge_step_sizes(model: nn.Module) -> None:
    """**converge** every sparse coding layer of ``model`` that has seen an input (:meth:`~_SparseCoding.converge_step_size`)."""
    for layer in csc_layers(model):
        if layer.tracked_vector.numel():
            layer.converge_step_size()


update_step_sizes = deprecated_alias(converge_step_sizes, "update_step_sizes")

"""The parameter-free parts of timm's model API that :class:`~sdnet_cli.models.resnet.ResNet` needs (no timm import).

``GlobalPool`` is timm's ``SelectAdaptivePool2d`` for the pool types a CNN head uses; ``take_indices`` is
``timm.models.feature_take_indices``; ``drop_path`` is timm's stochastic depth; ``checkpoint_seq`` runs a
list of modules under activation checkpointing. Each matches timm's behaviour (tests/test_timm_api.py).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..errors import UsageError

POOL_TYPES = ("avg", "max", "avgmax", "catavgmax", "")


class GlobalPool(nn.Module):
    """``(N, C, H, W)`` → ``(N, C·feat_mult())`` (flattened) by ``pool_type``; ``''`` passes ``x`` through.

    ``avg``: mean over ``H, W``; ``max``: maximum; ``avgmax``: their mean; ``catavgmax``: ``[avg, max]``
    along channels (``feat_mult() == 2``)."""

    def __init__(self, pool_type: str = "avg") -> None:
        super().__init__()
        if pool_type not in POOL_TYPES:
            raise UsageError(f"global_pool must be one of {', '.join(repr(p) for p in POOL_TYPES)}, got {pool_type!r}")
        self.pool_type = pool_type

    def is_identity(self) -> bool:
        return not self.pool_type

    def feat_mult(self) -> int:
        return 2 if self.pool_type == "catavgmax" else 1

    def forward(self, x: Tensor) -> Tensor:
        if not self.pool_type:
            return x
        mean = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1) if self.pool_type != "max" else x
        if self.pool_type == "avg":
            return mean  # nn.AdaptiveAvgPool2d(1), as the official models pool
        peak = torch.flatten(F.adaptive_max_pool2d(x, 1), 1)
        if self.pool_type == "max":
            return peak
        return 0.5 * (mean + peak) if self.pool_type == "avgmax" else torch.cat((mean, peak), 1)

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"


def take_indices(count: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """timm's ``feature_take_indices``: ``None`` = all ``count`` taps, an int ``n`` = the last ``n``, a sequence =
    those (negative from the end); returns ``(sorted-as-given absolute indices, their maximum)``."""
    if indices is None:
        indices = count
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise UsageError(f"last-n ({indices}) is out of range (1 to {count})")
        taken = [count - indices + i for i in range(indices)]
    else:
        taken = []
        for i in indices:
            idx = count + i if i < 0 else i
            if not 0 <= idx < count:
                raise UsageError(f"feature index {idx} is out of range (0 to {count - 1})")
            taken.append(idx)
    if not taken:
        raise UsageError("indices selects no feature")
    return taken, max(taken)


def drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``rate`` and scale the
    kept ones by ``1/(1−rate)`` (training only; timm's ``drop_path`` with ``scale_by_keep``)."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


def checkpoint_seq(modules: Sequence[nn.Module], x: Tensor) -> Tensor:
    """``x`` through ``modules`` in order, each block (children of a ``Sequential``) under
    ``torch.utils.checkpoint`` (its activations recomputed in backward instead of stored)."""
    for module in modules:
        blocks = list(module) if isinstance(module, nn.Sequential) else [module]
        for block in blocks:
            x = checkpoint(block, x, use_reentrant=False)
    return x


def linear_or_identity(in_features: int, num_classes: int, like: nn.Module | None = None,
                       device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> nn.Module:
    """``nn.Linear(in_features, num_classes)`` (on ``like``'s device and dtype when given), or
    ``nn.Identity()`` for ``num_classes == 0`` (timm's "no classifier")."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise UsageError(f"num_classes must be an integer >= 0 (0 = no classifier), got {num_classes!r}")
    if num_classes == 0:
        return nn.Identity()
    if like is not None:
        param = next(like.parameters(), None)
        if param is not None:
            device, dtype = param.device, param.dtype
    return nn.Linear(in_features, num_classes, device=device, dtype=dtype)


__all__ = ["GlobalPool", "POOL_TYPES", "checkpoint_seq", "drop_path", "linear_or_identity", "take_indices"]

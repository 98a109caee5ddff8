"""Learning-rate schedules as pure functions of the global step (so resuming needs only the step count).

- ``cosine``: per iteration, ``lr(t) = m + (base − m) · ½(1 + cos(π t / T))`` over the ``T`` post-warmup steps,
  ``m`` = ``min_lr`` (torch's ``CosineAnnealingLR(T_max=T, eta_min=m)`` stepped every iteration, as the official
  train.py does with ``T = len(train_loader) · epochs`` and ``m`` = 1e-6; torch updates it recursively, this is
  its closed form, equal to rounding).
- ``step``: ``base · γ^k`` with ``k`` = number of milestones (epochs) already reached.
- ``constant``: ``base``.

An optional linear warmup over ``warmup_epochs`` ramps from ``base / warmup_steps`` to ``base`` first.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from ..errors import UsageError


def lr_at(
    step: int,
    steps_per_epoch: int,
    epochs: int,
    base_lr: float,
    schedule: str = "cosine",
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    warmup_epochs: float = 0.0,
    min_lr: float = 0.0,
) -> float:
    """Learning rate for 0-based global ``step`` (the step about to be taken)."""
    total = max(1, steps_per_epoch * epochs)
    warm = int(round(warmup_epochs * steps_per_epoch))
    if warm and step < warm:
        return base_lr * (step + 1) / warm
    if schedule == "cosine":
        t = (step - warm) / max(1, total - warm)
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    if schedule == "step":
        epoch = step // max(1, steps_per_epoch)
        return base_lr * gamma ** sum(epoch >= m for m in milestones)
    if schedule == "constant":
        return base_lr
    raise UsageError(f"unknown schedule {schedule!r}; valid: cosine, step, constant")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr

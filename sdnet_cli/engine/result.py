"""What a training run returns or raises (``sdnet train --json`` prints :class:`TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class NonFiniteLossError(RuntimeError):
    """The loss, the weights or a step size became NaN/inf; the run stopped and kept its last good checkpoint."""


class TrainingInterrupted(Exception):
    """Ctrl-C: a resumable state was saved (``self.output``)."""

    def __init__(self, message: str, output: Path) -> None:
        super().__init__(message)
        self.output = output


@dataclass
class TrainResult:
    """A finished run. ``top1``/``top5``/``loss``: the test set after the last epoch; ``best_top1``: the
    selection metric of ``best/`` (top-1 on ``selected_on``: ``'val'``, the held-out split, or ``'test'``)."""

    output: str
    best: str
    last: str
    dataset: str
    model: str
    epochs: int
    steps: int
    best_epoch: int | None
    best_top1: float | None
    top1: float
    top5: float
    loss: float
    train_loss: float
    seconds: float
    resumed: bool
    selected_on: str = "test"
    val_top1: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

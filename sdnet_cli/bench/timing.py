"""Interleaved timing: the models take turns within one process, so drifting machine load hits all alike.

Round ``r`` runs one timed block (``inner`` steps) of every model, in an order rotated by ``r``; each
model's time per step is the median over rounds. Ratios of medians measured this way are far steadier
than separate runs on a shared machine.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch
from ..errors import UsageError

Step = Callable[[], None]


def time_block(step: Step, inner: int, device: torch.device) -> float:
    """Seconds per step of ``inner`` consecutive ``step()`` calls (device synchronised before and after)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(inner):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / inner


def interleaved_times(
    steps: Sequence[Step],
    rounds: int,
    warmup: int,
    device: torch.device,
    inner: int = 1,
) -> list[list[float]]:
    """Per-step seconds of each step function: ``times[i][r]`` for function ``i`` in round ``r``.

    ``warmup`` untimed steps of each function first (also interleaved), then ``rounds`` rounds.
    """
    if rounds < 1:
        raise UsageError(f"steps/rounds must be >= 1, got {rounds}")
    for _ in range(warmup):
        for step in steps:
            step()
    times: list[list[float]] = [[] for _ in steps]
    n = len(steps)
    for r in range(rounds):
        for j in range(n):
            i = (j + r) % n
            times[i].append(time_block(steps[i], inner, device))
    return times


def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    return float(statistics.median(values))

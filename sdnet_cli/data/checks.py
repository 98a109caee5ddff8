"""Checks of data read from a user's files: labels, normalisation statistics, dataset roots.

Each raises :class:`~sdnet_cli.errors.UsageError` naming the source and what to do, at the boundary (when a
dataset or transform is built), instead of an ``IndexError`` deep in the loss, a silent truncation of float
labels, or a division by a zero std.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UsageError


def check_labels(labels: object, num_classes: int, source: str) -> np.ndarray:
    """``labels`` as int64 ``(N,)`` after checking they form a 1-D array of integers in ``0 … num_classes − 1``.

    Float (or boolean) labels are refused, not truncated; ``source`` (a file or dataset) is named in the error.
    """
    try:
        arr = np.asarray(labels)
    except (ValueError, TypeError) as e:  # ragged nesting and the like
        raise UsageError(f"{source}: labels must be a 1-D list of class indices ({e})") from None
    if arr.ndim != 1:
        raise UsageError(f"{source}: labels must be a 1-D list of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        first = arr.flat[0]
        first = first.item() if isinstance(first, np.generic) else first
        raise UsageError(f"{source}: labels must be integer class indices, got {arr.dtype} values "
                         f"(e.g. {str(repr(first))[:40]}); store them as integers 0 … {num_classes - 1}")
    bad = np.flatnonzero((arr < 0) | (arr >= num_classes)) if arr.size else np.empty(0, np.int64)
    if len(bad):
        raise UsageError(f"{source}: label {int(arr[bad[0]])} (sample {int(bad[0])}) is outside 0 … "
                         f"{num_classes - 1} ({num_classes} classes; {len(bad)} labels out of range)")
    return arr.astype(np.int64)


def check_stats(mean: Sequence[float], std: Sequence[float]) -> None:
    """Per-channel normalisation statistics: equal lengths ≥ 1, all finite, every ``std > 0``."""
    mean, std = list(mean), list(std)
    if not mean or len(mean) != len(std):
        raise UsageError(f"mean and std need one value per channel each, got mean={mean} std={std}")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in mean + std):
        raise UsageError(f"mean and std must be finite numbers, got mean={mean} std={std}")
    if any(v <= 0 for v in std):
        raise UsageError(f"std must be > 0 for every channel (inputs are divided by it), got {std}")


def check_root(root: str | Path | None, what: str) -> None:
    """A dataset root that exists must be a folder (``what``: what the folder should hold)."""
    if root is not None and Path(root).exists() and not Path(root).is_dir():
        raise UsageError(f"data root {root} is a file; --data-root expects the folder that holds {what}")

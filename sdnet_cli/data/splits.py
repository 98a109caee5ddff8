"""The validation split held out from a training set (model selection never looks at the test set)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError


def train_val_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``: a seeded permutation of ``range(n)``; the last ``ceil(fraction·n)`` indices
    are the validation split (both sorted). ``fraction == 0`` → no validation split (``val_idx`` empty)."""
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise UsageError(f"data.val_split must be in [0, 1), got {fraction}")
    n_val = math.ceil(fraction * n)
    if fraction > 0 and not 0 < n_val < n:
        raise UsageError(f"data.val_split={fraction} leaves no training or no validation images out of {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n - n_val]), np.sort(perm[n - n_val:])

"""Replayed random draws shared by the CIFAR-C reference generator and the reference check.

:class:`Replay` answers both the legacy ``np.random`` calls of the reference script (``randint``,
``normal(size=, loc=, scale=)``, ``uniform``, ``poisson``) and the :class:`numpy.random.Generator` calls of
sdnet's corruptions (``integers``, ``normal``, ``uniform``, ``poisson``, ``random``) from one seeded stream,
so that the same draws reach both implementations however each groups them into calls: every value comes
from per-element draws (one double per uniform or integer, one standard normal per normal, Poisson by
element), whose sequence does not depend on how many values one call asks for.
"""

from __future__ import annotations

import numpy as np


class Replay:
    """A seeded stream of draws with the methods both implementations call."""

    def __init__(self, seed: int | list[int]) -> None:
        self.base = np.random.default_rng(seed)

    def random(self, size=None):  # noqa: ANN001, ANN201
        return self.base.random(size)

    def uniform(self, low=0.0, high=1.0, size=None):  # noqa: ANN001, ANN201
        return low + (high - low) * self.base.random(size)

    def normal(self, loc=0.0, scale=1.0, size=None):  # noqa: ANN001, ANN201
        return loc + scale * self.base.standard_normal(size)

    def integers(self, low, high=None, size=None):  # noqa: ANN001, ANN201
        if high is None:
            low, high = 0, low
        out = low + np.floor(self.base.random(size) * (high - low)).astype(np.int64)
        return int(out) if size is None else out

    randint = integers

    def poisson(self, lam=1.0, size=None):  # noqa: ANN001, ANN201
        return self.base.poisson(lam, size)


def replay_seed(corruption_index: int, severity: int, image_index: int) -> list[int]:
    """The seed of the draws for one (corruption, severity, image) of the reference data."""
    return [27, int(corruption_index), int(severity), int(image_index)]


STATISTICS = ("mean_abs_change", "std_change", "direction_x", "direction_y", "fine_detail")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def change_statistics(clean: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Statistics of the change ``d = out − clean`` over uint8 ``(N, H, W, 3)`` sets (see :data:`STATISTICS`).

    ``mean |d|`` and ``std d``; ``direction_x``: ``corr(d, x(p + e_x) − x(p)) − corr(d, x(p − e_x) − x(p))``
    over interior pixels (positive when the change looks ahead along +x, as a blur that reads ahead does),
    ``direction_y`` the same along +y (rows down); ``fine_detail``: ``mean |d(p + e_x) − d(p)|``.
    """
    x, d = clean.astype(np.float64), out.astype(np.float64) - clean
    inner = d[:, 1:-1, 1:-1]
    fx = x[:, 1:-1, 2:] - x[:, 1:-1, 1:-1]
    bx = x[:, 1:-1, :-2] - x[:, 1:-1, 1:-1]
    fy = x[:, 2:, 1:-1] - x[:, 1:-1, 1:-1]
    by = x[:, :-2, 1:-1] - x[:, 1:-1, 1:-1]
    return np.array([np.abs(d).mean(), d.std(), _corr(inner, fx) - _corr(inner, bx), _corr(inner, fy) - _corr(inner, by),
                     np.abs(np.diff(d, axis=2)).mean()])

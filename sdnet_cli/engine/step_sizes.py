"""Keep every CSC layer's step size at ``0.9 / L`` while the dictionaries train (the engine's part of the
step-size lifecycle described in :mod:`sdnet_cli.layers.csc`).

Each training forward tracks a layer's step size by one warm power iteration. That follows a slowly
changing dictionary closely, but on the near-flat top of a convolution's spectrum it falls behind when
the atoms move fast (AdamW, large learning rates, early steps) and it cannot see a new top eigenvector
overtaking the tracked one. So after every ``every``-th optimizer step the keeper **tracks** every layer
by ``iters`` warm Lanczos iterations with a little fixed jitter (:func:`track_step_sizes`: a fixed count,
no host read, so a GPU step never waits on it), and before each evaluation it **converges** them
(:func:`converge_step_sizes`). The first ``WARMUP_STEPS`` optimizer steps track with ``WARMUP_FACTOR``
times the iterations: fresh atoms move fastest while the momentum builds up (with the CIFAR recipe at
32x32, 20 iterations lagged by 3.8 % at step 3 and 60 by 0.1 %: docs/benchmarks.md); a fixed schedule of
the step count, so still no host read. Both depend only on the weights, the step count and the layer buffers
that training state saves, so a resumed run computes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import torch.nn as nn

from ..layers.sparse_coding import TRACK_ITERS
from ..layers.model_ops import converge_step_sizes, track_step_sizes


WARMUP_STEPS, WARMUP_FACTOR = 100, 3


class StepSizeKeeper:
    """Call :meth:`after_step` after every optimizer step and :meth:`refresh_all` before evaluating.

    ``every`` = 0 turns both off (the per-forward power iteration alone then tracks the step size).
    """

    def __init__(self, model: nn.Module, every: int, iters: int = TRACK_ITERS) -> None:
        self.model = model
        self.every = int(every)
        self.iters = int(iters)

    def after_step(self, step: int) -> None:
        """Track every layer when global step ``step`` (1, 2, …) is a multiple of ``every`` (no host read);
        ``WARMUP_FACTOR`` × ``iters`` iterations up to step ``WARMUP_STEPS``."""
        if self.every > 0 and step % self.every == 0:
            track_step_sizes(self.model, self.iters * (WARMUP_FACTOR if step <= WARMUP_STEPS else 1))

    def refresh_all(self) -> None:
        """Converge every layer that has seen an input (atoms renormalised first); off when ``every`` is 0."""
        if self.every > 0:
            converge_step_sizes(self.model)

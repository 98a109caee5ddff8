"""Keep every CSC layer's step size at its converged value ``0.9 / L`` while the dictionaries train.

Each training forward refreshes a layer's step size by one warm-started power iteration (cheap and
traceable). That tracks a slowly changing dictionary closely, but on the near-flat top of a
convolution's spectrum it falls behind when the atoms move fast (AdamW, large learning rates, early
steps) and it cannot see a new top eigenvector overtaking the tracked one. So every ``every``
optimizer steps (and before each evaluation) the engine re-converges each layer by warm-started
Lanczos, eagerly, outside any compiled graph (:meth:`CSCConv2d.refresh_step_size`). The refresh
depends only on the weights, the step count and the layer buffers that training state saves, so a
resumed run computes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import torch.nn as nn

from ..layers.csc import csc_layers


class StepSizeKeeper:
    """Call :meth:`after_step` after every optimizer step and :meth:`refresh_all` before evaluating."""

    def __init__(self, model: nn.Module, every: int) -> None:
        self.layers = csc_layers(model)
        self.every = int(every)
        self.refreshes = 0

    def after_step(self, step: int) -> int:
        """Re-converge every layer when global step ``step`` is a multiple of ``every``; returns how many."""
        if self.every <= 0 or step % self.every:
            return 0
        return self.refresh_all()

    def refresh_all(self) -> int:
        """Re-converge every layer that has seen an input (atoms renormalised first); returns how many."""
        if self.every <= 0:
            return 0
        seen = [layer for layer in self.layers if layer._v.numel()]
        for layer in seen:
            layer.refresh_step_size()
        self.refreshes += len(seen)
        return len(seen)

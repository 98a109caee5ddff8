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

from ..layers.csc import update_step_sizes


class StepSizeKeeper:
    """Call :meth:`after_step` after every optimizer step and :meth:`refresh_all` before evaluating."""

    def __init__(self, model: nn.Module, every: int) -> None:
        self.model = model
        self.every = int(every)

    def after_step(self, step: int) -> None:
        """Re-converge every layer when global step ``step`` is a multiple of ``every``."""
        if self.every > 0 and step % self.every == 0:
            self.refresh_all()

    def refresh_all(self) -> None:
        """Re-converge every layer that has seen an input (atoms renormalised first); off when ``every`` is 0."""
        if self.every > 0:
            update_step_sizes(self.model, converge=False)

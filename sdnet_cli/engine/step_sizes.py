"""Keep every CSC layer's step size at ``0.9 / L`` while the dictionaries train (the engine's part of the
step-size lifecycle described in :mod:`sdnet_cli.layers.sparse_coding`).

Each training forward tracks a layer's step size by one warm power iteration. That follows a slowly
changing dictionary closely, but on the near-flat top of a convolution's spectrum it falls behind when
the atoms move fast (AdamW, large learning rates, early steps) and it cannot see a new top eigenvector
overtaking the tracked one. So the keeper also **tracks** layers by ``iters`` warm Lanczos iterations with
a little fixed jitter (:func:`~sdnet_cli.layers.sparse_coding._SparseCoding.track_step_size`: a fixed
count, no host read, so a GPU step never waits on it), and before each evaluation it **converges** them
(:func:`~sdnet_cli.layers.model_ops.converge_step_sizes`). The schedule is a fixed function of the optimizer step count:

* **warm-up** (steps 1 … ``WARMUP_STEPS``): every layer after every step, with ``WARMUP_FACTOR`` × ``iters``
  iterations. Fresh atoms move fastest while the momentum builds up: with the CIFAR recipe, 20 iterations
  per step lag behind them and 60 keep up (docs/benchmarks.md, "Step sizes over training").
* **steady state** (later steps): each layer every ``every`` steps, the layers taking turns (layer ``i`` of
  the model's CSC layers at the steps ``≡ i (mod every)``), so each step carries about ``1/every`` of the
  work instead of every ``every``-th step all of it. With ``every`` = 16 (the default) the error stays far
  below 1 % on digits (AdamW) and on the CIFAR recipe after their warm-up, at 1/16 of the cost
  (docs/benchmarks.md, "Step sizes over training").

Everything depends only on the weights, the step count and the layer buffers that training state saves,
so a resumed run computes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import torch.nn as nn

from ..deprecations import deprecated_alias
from ..layers import model_ops
from ..layers.model_ops import csc_layers
from ..layers.sparse_coding import TRACK_ITERS

WARMUP_STEPS, WARMUP_FACTOR = 100, 3


class StepSizeKeeper:
    """Call :meth:`after_step` after every optimizer step and :meth:`converge_step_sizes` before evaluating.

    ``every`` (``train.step_size_every``, default 16): the steady-state period of each layer; 0 turns both
    off (the per-forward power iteration alone then tracks the step size).
    """

    def __init__(self, model: nn.Module, every: int, iters: int = TRACK_ITERS) -> None:
        self.model = model
        self.every = int(every)
        self.iters = int(iters)

    def due(self, step: int, n_layers: int) -> tuple[list[int], int]:
        """Which of ``n_layers`` CSC layers (indices in module order) global step ``step`` (1, 2, …) tracks,
        and with how many iterations: all with ``WARMUP_FACTOR·iters`` up to ``WARMUP_STEPS``, then those
        with ``i ≡ step (mod every)``; none when ``every`` is 0."""
        if self.every <= 0:
            return [], 0
        if step <= WARMUP_STEPS:
            return list(range(n_layers)), self.iters * WARMUP_FACTOR
        return [i for i in range(n_layers) if i % self.every == step % self.every], self.iters

    def after_step(self, step: int) -> None:
        """Track the layers :meth:`due` at global step ``step`` (a fixed count each, no host read)."""
        layers = csc_layers(self.model)
        indices, n_iter = self.due(step, len(layers))
        for i in indices:
            if layers[i].tracked_vector.numel():
                layers[i].track_step_size(n_iter)

    def converge_step_sizes(self) -> None:
        """Converge every layer that has seen an input (atoms renormalised first); off when ``every`` is 0."""
        if self.every > 0:
            model_ops.converge_step_sizes(self.model)

    refresh_all = deprecated_alias(converge_step_sizes, "StepSizeKeeper.refresh_all")

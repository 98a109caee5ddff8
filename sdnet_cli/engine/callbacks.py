"""Hooks through which the training loop reports progress (the CLI draws rich bars from them).

The library never prints: a caller subclasses :class:`Callbacks` and overrides what it needs.
"""

from __future__ import annotations

from typing import Any


class Callbacks:
    """No-op hooks called by :func:`sdnet_cli.engine.train.train` on every rank (check ``info['is_main']``)."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Run facts: output, device, threads, world, dataset, model, epochs, steps_per_epoch, image_size…"""

    def on_epoch_start(self, epoch: int, steps: int, done: int) -> None:
        """0-based ``epoch`` with ``steps`` batches, ``done`` of them already done (resume)."""

    def on_batch(self, row: dict[str, Any]) -> None:
        """After each optimisation step: step, epoch, batch, loss, top1, lr, images_per_s."""

    def on_eval_start(self, images: int) -> None:
        """Evaluation on the test split begins."""

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        """The epoch's metrics row (as in ``metrics.jsonl``) plus ``best`` (top-1 improved)."""

    def on_end(self, result: Any) -> None:
        """The :class:`~sdnet_cli.engine.train.TrainResult`."""

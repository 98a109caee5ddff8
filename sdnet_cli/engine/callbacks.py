"""Hooks through which the training loop reports progress (the CLI draws rich bars from them).

The library never prints: a caller subclasses :class:`Callbacks` and overrides what it needs.
"""

from __future__ import annotations

from typing import Any


class Callbacks:
    """No-op hooks called by :func:`sdnet_cli.engine.train.train` on every rank (check ``info['is_main']``)."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Run facts: output, device, threads and memory_reuse (the CPU settings this run applied), world, dataset,
        model, epochs, steps_per_epoch, train_images, val_images, selected_on, image_size, resumed_at, is_main,
        warnings (lines to show the user, e.g. damaged log lines skipped on resume)."""

    def on_epoch_start(self, epoch: int, steps: int, done: int) -> None:
        """0-based ``epoch`` with ``steps`` batches, ``done`` of them already done (resume)."""

    def on_batch(self, row: dict[str, Any]) -> None:
        """After each optimisation step: step, epoch, batch, loss, top1, lr, wall_s, data_s, images_per_s."""

    def on_eval_start(self, images: int) -> None:
        """Evaluation of ``images`` images (validation split, if any, and test set) begins."""

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        """The epoch's metrics row (as in ``metrics.jsonl``) plus ``best`` (top-1 improved)."""

    def on_end(self, result: Any) -> None:
        """The :class:`~sdnet_cli.engine.train.TrainResult`."""

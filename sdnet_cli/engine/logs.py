"""The per-step logs of a run: ``steps.jsonl`` (append-only) and TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .rundir import read_jsonl, write_jsonl


class StepLog:
    """Append-only ``steps.jsonl`` (line-buffered). On resume the file is first cut back to the resumed step,
    so no step is ever recorded twice (one writer: the run holds the folder's lock)."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None:
            write_jsonl(path, [r for r in read_jsonl(path) if r.get("step", 0) <= resume_step])
        self._f = open(path, "a", buffering=1)

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self._f.close()


class TensorBoard:
    """TensorBoard scalars under ``<out>/tb`` when ``tensorboard`` is installed; otherwise a no-op."""

    def __init__(self, directory: Path, enabled: bool, purge_step: int | None = None) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed
            return
        self.writer = SummaryWriter(str(directory), purge_step=purge_step)

    def scalars(self, values: dict[str, Any], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(prefix + k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class RunLogs:
    """Both logs of rank 0 (``None`` files elsewhere), reopened at a new path when a staged run is switched in."""

    def __init__(self, out: Path | None, tensorboard: bool, resume_step: int | None) -> None:
        self.steps = StepLog(out / "steps.jsonl", resume_step) if out is not None else None
        self.tb = TensorBoard(out / "tb" if out is not None else Path("tb"), tensorboard and out is not None, resume_step)
        self._tensorboard = tensorboard

    def step(self, row: dict[str, Any]) -> None:
        if self.steps is not None:
            self.steps.write(row)
        self.tb.scalars({"loss": row["loss"], "lr": row["lr"]}, row["step"], "train_step/")

    def epoch(self, row: dict[str, Any]) -> None:
        self.tb.scalars({k: v for k, v in row.items() if k not in ("epoch", "step")}, row["epoch"], "epoch/")

    def close(self) -> None:
        if self.steps is not None:
            self.steps.close()
        self.tb.close()

    def moved(self, out: Path) -> "RunLogs":
        """Close, then the same logs continued (appended) under ``out``."""
        self.close()
        return RunLogs(out, self._tensorboard, None)

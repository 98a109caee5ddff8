"""The per-step logs of a run: ``steps.jsonl`` (append-only) and TensorBoard scalars.

Append-only logs are read tolerantly (:func:`read_log`): a damaged line is skipped and reported, never a
reason to drop the good rows after it. (``metrics.jsonl`` is never read back: it is rewritten whole from the
per-epoch history of the saved state at each epoch's end.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..checks import is_int
from ..fsio import write_jsonl


def read_log(path: Path, key: str = "step") -> tuple[list[dict[str, Any]], list[str]]:
    """``(rows, problems)`` of a JSON-lines log: every line that is a JSON object with an integer ``key``, in
    order; ``problems`` says which other lines were skipped (``'steps.jsonl line 7: not JSON'``). An unfinished
    last line (no newline: the writer was killed mid-line) is dropped without a word. A missing file is empty."""
    if not path.is_file():
        return [], []
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and not data.endswith(b"\n"):
        lines = lines[:-1]  # the unfinished write of a killed run
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            problems.append(f"{path.name} line {number}: not JSON")
            continue
        if not isinstance(row, dict) or not is_int(row.get(key)):
            problems.append(f"{path.name} line {number}: not a row with an integer {key!r}")
            continue
        rows.append(row)
    return rows, problems


def skipped_lines(path: Path, problems: list[str]) -> str:
    """One warning for the damaged lines of ``path`` (at most three named)."""
    more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
    return (f"{path}: skipped {len(problems)} damaged line(s) ({'; '.join(problems[:3])}{more}); "
            "the good rows before and after them are kept")


class StepLog:
    """Append-only ``steps.jsonl`` (line-buffered). On resume the file is first cut back to the resumed step,
    so no step is ever recorded twice (one writer: the run holds the folder's lock); damaged lines are
    dropped then, and said in :attr:`warnings`."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        self.warnings: list[str] = []
        if resume_step is not None:
            rows, problems = read_log(path)
            if problems:
                self.warnings.append(skipped_lines(path, problems))
            write_jsonl(path, [r for r in rows if r["step"] <= resume_step])
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
        self.warnings = self.steps.warnings if self.steps is not None else []

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

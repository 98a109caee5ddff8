"""The output directory of a training run and the logs written into it.

Layout::

    <out>/config.yaml      resolved configuration
    <out>/metrics.jsonl    one JSON object per epoch
    <out>/steps.jsonl      one JSON object per optimisation step (loss, top-1, lr)
    <out>/best/ <out>/last/ model directories (model.safetensors + config.json)
    <out>/state/           training state for exact resume (see state.py)
    <out>/tb/              TensorBoard event files (when tensorboard is installed)
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from ..fsio import atomic_write_bytes
from ..errors import MissingFileError, UsageError

RUN_ITEMS = ("config.yaml", "metrics.jsonl", "steps.jsonl", "best", "last", "state", "tb")


def default_output(dataset: str, model: str, root: str | Path = "runs") -> Path:
    """``runs/<dataset>-<model>-<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``… if taken)."""
    base = Path(root) / f"{dataset}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 2
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return path


def is_run_dir(path: Path) -> bool:
    """Does ``path`` hold (part of) an ``sdnet train`` run?"""
    return any((path / item).exists() for item in RUN_ITEMS)


def prepare_output(path: str | Path, resume: bool, force: bool) -> Path:
    """Check ``path`` is usable: a new or empty folder; an existing run only with ``resume`` (continue it) or
    ``force`` (its run files are deleted — nothing else in the folder is touched)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"output {path} is a file; pass a directory to --output")
    if resume:
        if not (path / "config.yaml").is_file():
            raise MissingFileError(f"cannot resume: {path} is not a run directory (no config.yaml); "
                                    "pass the --output of the interrupted run")
        return path
    if path.is_dir() and any(path.iterdir()):
        if not force:
            what = "holds another run" if is_run_dir(path) else "is not empty"
            raise UsageError(f"output directory {path} {what}; pass --resume to continue it, --force to overwrite "
                             "it, or another --output")
        for item in RUN_ITEMS:
            p = path / item
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite a JSON-lines file atomically."""
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (empty when missing; an unfinished last line is dropped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


class StepLog:
    """Append-only ``steps.jsonl`` (line-buffered). On resume the file is cut back to the resumed step."""

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

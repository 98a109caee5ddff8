"""The output directory of a training run: its layout and what may be written where (finding runs:
:mod:`~sdnet_cli.engine.runfind`; resuming one: :mod:`~sdnet_cli.engine.resume`).

Layout::

    <out>/config.yaml      resolved configuration
    <out>/metrics.jsonl    one JSON object per epoch
    <out>/steps.jsonl      one JSON object per optimisation step (loss, top-1, lr, wall_s, data_s)
    <out>/best/ <out>/last/ model directories (model.safetensors + config.json)
    <out>/state/           training state for exact resume (see state.py)
    <out>/tb/              TensorBoard event files (when tensorboard is installed)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UsageError
from ..fsio import atomic_write_bytes, check_output_dir

RUN_ITEMS = ("config.yaml", "metrics.jsonl", "steps.jsonl", "best", "last", "state", "tb")


def default_output(dataset: str, model: str, root: str | Path = "runs") -> Path:
    """``runs/<dataset>-<model>-<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``… if taken); a ``torchvision:NAME`` model
    name becomes ``torchvision_NAME`` (no colon in a folder name)."""
    safe = "".join(c if c.isalnum() or c in "._+-" else "_" for c in model)
    base = Path(root) / f"{dataset}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 2
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return path


def is_run_dir(path: Path) -> bool:
    """Does ``path`` hold (part of) an ``sdnet train`` run?"""
    return any((path / item).exists() for item in RUN_ITEMS)


def run_items(path: Path) -> tuple[str, ...] | None:
    """What ``sdnet train`` owns in ``path``: the run's items when it holds a run, else ``None`` (the output rule's
    layout of a run directory, see :func:`sdnet_cli.fsio.check_output_dir`)."""
    return RUN_ITEMS if is_run_dir(path) else None


def check_output(path: Path, resume: bool, force: bool) -> None:
    """Is ``path`` usable (read-only check)? A new or empty folder; an existing run only with ``resume``
    (continue it) or ``force`` (replace it, files of the user's in it carried over, see
    :class:`~sdnet_cli.engine.workdir.RunDirectory`); a folder of other files is never used (the output rule)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"output {path} is a file; pass a directory to --output")
    if resume:
        if not (path / "config.yaml").is_file():
            raise MissingFileError(f"cannot resume: {path} is not a run directory (no config.yaml); "
                                   "pass the --output of the interrupted run")
        return
    check_output_dir(path, "train", layout=run_items)  # a folder of the user's: refused, --force or not
    if path.is_dir() and is_run_dir(path) and not force:
        raise UsageError(f"output directory {path} holds another run; pass --resume to continue it, --force to "
                         "overwrite it, or another --output")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite a JSON-lines file atomically."""
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


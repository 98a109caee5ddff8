"""Finding runs under a folder (``runs/`` by default): the newest one, or the newest finished one.

``sdnet train --resume`` without ``--output`` continues :func:`newest_run`; ``eval``, ``robust``,
``visualize`` and ``export`` without a model take ``newest_run(finished=True)``. Reads only.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .state import find_state

DEFAULT_ROOT = "runs"


def is_finished(run: Path) -> bool:
    """Has ``run`` trained all its epochs: its saved state at the end of epoch ``train.epochs`` (as recorded in
    the state) and ``best/`` written?"""
    found = find_state(run / "state")
    if found is None or not (run / "best" / "config.json").is_file():
        return False
    meta = found[0]
    try:
        loop, epochs = meta["loop"], meta["extra"]["config"]["train"]["epochs"]
        return loop["batch"] == 0 and loop["epoch"] >= epochs
    except (KeyError, TypeError):
        return False


def newest_run(root: str | Path = DEFAULT_ROOT, finished: bool = False) -> Path | None:
    """The most recently modified run under ``root`` with a ``config.yaml`` and a saved state (with
    ``finished``, only those :func:`is_finished` accepts); ``None`` when there is none."""
    root = Path(root)
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file() and (p / "state").is_dir()]
    if finished:
        runs = [p for p in runs if is_finished(p)]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


def default_run(root: str | Path = DEFAULT_ROOT) -> Path:
    """The run a command takes when none is named: :func:`newest_run` ``(root, finished=True)``; a
    :class:`~sdnet_cli.errors.UsageError` saying to train first or name a model when there is none."""
    run = newest_run(root, finished=True)
    if run is None:
        where = f"{root}/" if Path(root).is_dir() else f"{root}/ (no such folder here)"
        raise UsageError(f"no finished run under {where}: train one first (sdnet train) or name a model "
                         "(a run or model directory, a zoo name or a Hub repo ORG/REPO)")
    return run

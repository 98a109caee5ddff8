"""The run directory of ``sdnet train``: its layout, finding runs, and the one process that writes it.

Layout::

    <out>/config.yaml      resolved configuration
    <out>/metrics.jsonl    one JSON object per epoch
    <out>/steps.jsonl      one JSON object per optimisation step (loss, top-1, lr, wall_s, data_s)
    <out>/best/ <out>/last/ model directories (model.safetensors + config.json)
    <out>/state/           training state for exact resume (see state.py)
    <out>/tb/              TensorBoard event files (when tensorboard is installed)

- **What may be written where**: :func:`check_output` — a new or empty folder, a run only with ``--resume`` or
  ``--force``, a folder of other files never (the output rule, :func:`~sdnet_cli.outputs.check_output_dir`).
- **Finding runs** under a folder (``runs/`` by default, reads only): ``sdnet train --resume`` without
  ``--output`` continues :func:`newest_run`; ``eval``, ``robust``, ``visualize`` and ``export`` without a model
  take :func:`default_run`. (Resuming one: :mod:`~sdnet_cli.engine.resume`.)
- **One process per run** (:class:`RunDirectory`): :class:`~sdnet_cli.outputs.OutputLock` on the target (a
  hidden sibling lock file, released by the kernel when the process dies); a second ``sdnet train`` on it exits
  2 naming the holder. Under ``torchrun`` rank 0 holds it. Leftovers of killed runs are removed first: staging
  folders of the run and of its ``best/``, ``last/``, ``state/`` (:func:`~sdnet_cli.fsio.clean_stale`) and the
  ``.*.tmp`` files of interrupted atomic writes (no other process writes into a locked run).
- **``--force`` over an existing run** writes the new run into a staging sibling
  (:class:`~sdnet_cli.fsio.Staged`); :meth:`RunDirectory.commit` switches it in at its first complete
  checkpoint, after carrying the old folder's foreign items (anything that is not a run file, e.g. an
  ``export/``) over into it. Before the switch the old run is intact; after it the new run is complete. A kill in
  between leaves a staging folder that the next run removes. A symlinked run directory is written through.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import MissingFileError, UsageError
from ..fsio import Staged, clean_stale
from ..outputs import OutputLock, check_output_dir
from .state import find_state

RUN_ITEMS = ("config.yaml", "metrics.jsonl", "steps.jsonl", "best", "last", "state", "tb")
MODEL_FOLDERS = ("best", "last", "state")
DEFAULT_ROOT = "runs"


# -- layout -----------------------------------------------------------------------------------------
def default_output(dataset: str, model: str, root: str | Path = DEFAULT_ROOT) -> Path:
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
    layout of a run directory, see :func:`sdnet_cli.outputs.check_output_dir`)."""
    return RUN_ITEMS if is_run_dir(path) else None


def check_output(path: Path, resume: bool, force: bool) -> None:
    """Is ``path`` usable (read-only check)? A new or empty folder; an existing run only with ``resume``
    (continue it) or ``force`` (replace it, files of the user's in it carried over, see :class:`RunDirectory`);
    a folder of other files is never used (the output rule)."""
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


# -- finding runs -----------------------------------------------------------------------------------
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


# -- the run being written --------------------------------------------------------------------------
def remove_leftovers(target: Path) -> None:
    """Delete what killed runs left in and beside ``target`` (call with the lock held): staging folders of
    dead processes, and the ``.*.tmp`` files of atomic writes (:func:`~sdnet_cli.fsio.atomic_write_bytes`)."""
    clean_stale(target)
    if not target.is_dir():
        return
    for name in MODEL_FOLDERS:
        clean_stale(target / name)
    for folder in (target, *(target / n for n in MODEL_FOLDERS)):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)


class RunDirectory:
    """Where rank 0 writes: ``path`` (the target, or the staging sibling of ``staged`` until :meth:`commit`)."""

    def __init__(self, target: Path, lock: OutputLock, staged: Staged | None = None) -> None:
        self.target, self.lock, self._staged = target, lock, staged

    @classmethod
    def acquire_lock(cls, target: Path) -> OutputLock:
        """Take the run's lock (:class:`~sdnet_cli.outputs.OutputLocked` names the holder when another has it)."""
        return OutputLock(target).acquire()

    @classmethod
    def open(cls, target: Path, lock: OutputLock, resume: bool, force: bool) -> "RunDirectory":
        """With ``lock`` held: check ``target`` again, remove leftovers, and choose where to write."""
        check_output(target, resume, force)
        remove_leftovers(target)
        if force and not resume and target.is_dir() and any(target.iterdir()):
            return cls(target, lock, Staged(target))
        target.mkdir(parents=True, exist_ok=True)
        return cls(target, lock)

    @property
    def path(self) -> Path:
        return self._staged.path if self._staged is not None else self.target

    @property
    def staged(self) -> bool:
        """Is the run still written beside the target (the old run intact)?"""
        return self._staged is not None

    def commit(self) -> bool:
        """Switch a staged run in (the old run's foreign items carried over); ``True`` when this call switched."""
        if self._staged is None:
            return False
        self._staged.commit(RUN_ITEMS, "train")
        self._staged = None
        return True

    def discard(self) -> None:
        """Drop a staged run that never became complete (the old run stays)."""
        if self._staged is not None:
            self._staged.discard()
            self._staged = None

    def close(self) -> None:
        self.lock.release()

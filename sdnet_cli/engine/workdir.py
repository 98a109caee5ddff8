"""The run directory of one training process: locked for the whole run, replaced as a whole on ``--force``.

- **One process per run**: :class:`~sdnet_cli.fsio.OutputLock` on the target (a hidden sibling lock file,
  released by the kernel when the process dies); a second ``sdnet train`` on it exits 2 naming the holder.
  Under ``torchrun`` rank 0 holds it.
- **Leftovers of killed runs** are removed first: staging folders of the run and of its ``best/``,
  ``last/``, ``state/`` (:func:`~sdnet_cli.fsio.clean_stale`) and the ``.*.tmp`` files of interrupted atomic
  writes (no other process writes into a locked run).
- **``--force`` over an existing run** writes the new run into a staging sibling; :meth:`commit` switches
  it in (:func:`~sdnet_cli.fsio.replace_dir`) at its first complete checkpoint, after carrying the old
  folder's foreign items (anything that is not a run file, e.g. an ``export/``) over into it
  (:func:`~sdnet_cli.fsio.carry_over`). A folder that holds no run is never used (the output rule of
  :func:`~sdnet_cli.fsio.check_output_dir`); a symlinked run directory is written through. Before the switch
  the old run is intact; after it the new run is complete. A kill in between leaves a staging folder that
  the next run removes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..fsio import OutputLock, carry_over, clean_stale, replace_dir, staging_dir
from .rundir import RUN_ITEMS, check_output

MODEL_FOLDERS = ("best", "last", "state")


def remove_leftovers(target: Path) -> None:
    """Delete what killed runs left in and beside ``target`` (call with the lock held)."""
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
    for legacy in (target / "state").glob(".ckpt-*.tmp") if (target / "state").is_dir() else ():
        legacy.unlink(missing_ok=True)


class RunDirectory:
    """Where rank 0 writes: ``path`` (the target, or a staging sibling until :meth:`commit`)."""

    def __init__(self, target: Path, lock: OutputLock, path: Path) -> None:
        self.target, self.lock, self.path = target, lock, path

    @classmethod
    def acquire_lock(cls, target: Path) -> OutputLock:
        """Take the run's lock (:class:`~sdnet_cli.fsio.OutputLocked` names the holder when another has it)."""
        return OutputLock(target).acquire()

    @classmethod
    def open(cls, target: Path, lock: OutputLock, resume: bool, force: bool) -> "RunDirectory":
        """With ``lock`` held: check ``target`` again, remove leftovers, and choose where to write."""
        check_output(target, resume, force)
        remove_leftovers(target)
        if force and not resume and target.is_dir() and any(target.iterdir()):
            return cls(target, lock, staging_dir(target))
        target.mkdir(parents=True, exist_ok=True)
        return cls(target, lock, target)

    @property
    def staged(self) -> bool:
        """Is the run still written beside the target (the old run intact)?"""
        return self.path != self.target

    def commit(self) -> bool:
        """Switch a staged run in; ``True`` when this call switched."""
        if not self.staged:
            return False
        carry_over(self.target, self.path, RUN_ITEMS, "train")
        replace_dir(self.path, self.target)
        self.path = self.target
        return True

    def discard(self) -> None:
        """Drop a staged run that never became complete (the old run stays)."""
        if self.staged:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = self.target

    def close(self) -> None:
        self.lock.release()

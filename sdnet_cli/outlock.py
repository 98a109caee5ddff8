"""One process per output folder: :class:`OutputLock`, an exclusive ``flock`` on a hidden sibling.

The lock file ``.<name>.lock`` (``.sdnet.lock-<hash>`` when the folder's name is too long for that) sits
beside the folder, outside it, so it survives the folder's switch; the kernel releases it when the process
dies, so a kill never leaves it stale, and a normal release removes the file. A folder reached through a
symlink is locked at its real path, so two names for one folder share one lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from .errors import UsageError

_NAME_MAX = 255


def lock_path(target: Path) -> Path:
    """Where the lock of the folder ``target`` (its real path) lives."""
    real = Path(os.path.realpath(target))
    name = f".{real.name}.lock"
    if len(os.fsencode(name)) > _NAME_MAX:
        name = f".sdnet.lock-{hashlib.sha256(os.fsencode(real.name)).hexdigest()[:16]}"
    return real.parent / name


class OutputLocked(UsageError):
    """Another process holds the output folder (exit code 2)."""


class OutputLock:
    """Exclusive OS lock on ``target`` (a hidden sibling lock file) for the life of a run.

    ``with OutputLock(path): ...``; a second process gets :class:`OutputLocked` naming the holder's PID. The
    lock file is removed on release, so a finished or failed run leaves nothing beside ``target``; a lock is
    only taken on a file that is still the one at the lock path (checked after ``flock``), which makes the
    removal safe against a process that opened the file just before it went away.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                error = self._in_use(fd)
                os.close(fd)
                raise error from None
            if self._still_at_path(fd):
                break
            os.close(fd)  # the holder removed this file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def probe(self) -> None:
        """Raise :class:`OutputLocked` when another process holds the lock now; creates and changes nothing
        (lets a command report the holder before its read-only checks, and take the lock after them)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            raise self._in_use(fd) from None
        finally:
            os.close(fd)

    def _in_use(self, fd: int) -> OutputLocked:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        return OutputLocked(f"{self.target} is in use by process {holder}; wait for it to finish, stop it, "
                            "or pass another --output")

    def _still_at_path(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked: nobody else holds this file
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

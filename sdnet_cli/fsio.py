"""Outputs that are replaced as a whole, and one process per output folder.

- :func:`atomic_write_bytes`: one file through a temporary name in the same folder, then ``rename``.
- :func:`staging_dir` + :func:`replace_dir`: a whole folder is written beside the target (a hidden sibling
  ``.<name>.tmp-<pid>-<random>``) and switched over in one step — ``renameat2(RENAME_EXCHANGE)`` where the
  kernel and file system have it, else two renames with a backup that :func:`clean_stale` puts back. A
  SIGKILL at any instant leaves the complete old or the complete new folder.
- :func:`clean_stale`: removes the temporaries of processes that no longer run (and restores a backup
  left between the two renames of the fallback).
- :class:`OutputLock`: an exclusive ``flock`` on a hidden sibling ``.<name>.lock`` (outside the folder, so it
  survives the switch); the kernel releases it when the process dies, so a kill never leaves it stale, and a
  normal release removes the file.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from .errors import UsageError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp makes 0600


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (fsync), then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def staging_dir(target: Path) -> Path:
    """A new empty hidden sibling of ``target`` to write the replacement into (stale ones removed first)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    path = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def check_replaceable(target: Path, marker: str, flag: str = "--output") -> None:
    """Raise a :class:`UsageError` unless ``target`` is absent, an empty folder, or an earlier output of the same
    command (it holds ``marker``): a folder with other content is never replaced as a whole."""
    target = Path(target)
    if not target.exists():
        return
    if not target.is_dir():
        raise UsageError(f"{flag} {target} is a file; pass a folder (new, empty, or an earlier output to replace)")
    if any(target.iterdir()) and not (target / marker).is_file():
        raise UsageError(f"{flag} {target} holds other files (no {marker}); pass a new or empty folder, or an earlier "
                         "output of this command to replace")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); ``False`` where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def replace_dir(staged: Path, target: Path) -> None:
    """Make the complete folder ``staged`` become ``target`` in one switch; the old content is deleted."""
    staged, target = Path(staged), Path(target)
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        shutil.rmtree(staged, ignore_errors=True)  # now holds the old content
        return
    backup = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(target, backup)
    os.rename(staged, target)
    shutil.rmtree(backup, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(target: Path) -> None:
    """Remove ``target``'s temporaries left by dead processes; put back a backup if ``target`` went missing."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for kind in ("tmp", "old"):
        for p in target.parent.glob(f".{target.name}.{kind}-*"):
            try:
                pid = int(p.name.rsplit("-", 2)[-2])
            except (ValueError, IndexError):
                continue
            if _pid_alive(pid) and pid != os.getpid():
                continue
            if kind == "old" and not target.exists():
                os.rename(p, target)
            elif p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


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
        self.path = self.target.parent / f".{self.target.name}.lock"
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

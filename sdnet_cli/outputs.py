"""What a command may write where (the one output rule), and one process per output folder.

- The output rule (:func:`check_output_dir`, :func:`write_output`): a command writes into a new folder, an
  empty one, or its own earlier output (recognised by the manifest ``.sdnet-output.json`` it leaves there, or
  by the command's own layout). In its own earlier output it replaces the files it wrote and carries every
  other entry over; any other folder is refused (exit 2), as is the model being read or a folder holding it.
  Nothing of the user's is ever deleted. The output is written as a whole (:func:`sdnet_cli.fsio.staged_dir`).
- :class:`OutputLock`: an exclusive ``flock`` on a hidden sibling ``.<name>.lock`` (``.sdnet.lock-<hash>`` when
  the folder's name is too long for that), outside the folder, so it survives the folder's switch; the kernel
  releases it when the process dies, so a kill never leaves it stale, and a normal release removes the file.
  A folder reached through a symlink is locked at its real path, so two names for one folder share one lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from .errors import UsageError
from .fsio import atomic_write_json, is_temporary, real_path, staged_dir

MANIFEST = ".sdnet-output.json"
"""What a command wrote into its output folder: ``{"command": NAME, "files": [top-level names]}``."""
T = TypeVar("T")
_NAME_MAX = 255


def lock_path(target: Path) -> Path:
    """Where the lock of the folder ``target`` (its real path) lives."""
    real = real_path(target)
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


@dataclass(frozen=True)
class OutputDir:
    """A checked output folder of ``command``: ``path`` is the real folder (a link's target), ``owned`` the
    entries of its current content that the command wrote (replaced); every other entry is carried over."""

    given: Path
    path: Path
    command: str
    owned: frozenset[str] = frozenset()
    flag: str = "--output"
    sources: tuple[Path, ...] = ()
    layout: Callable[[Path], Iterable[str] | None] | None = field(default=None, compare=False)


def read_manifest(folder: Path) -> tuple[str, frozenset[str]] | None:
    """``(command, names it wrote)`` of ``folder``'s manifest; ``None`` when there is none or it is damaged."""
    try:
        obj = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("command"), str) or not isinstance(obj.get("files"), list):
        return None
    names = [n for n in obj["files"] if isinstance(n, str) and n and "/" not in n and n not in (".", "..")]
    return obj["command"], frozenset(names) | {MANIFEST}


def _shown(names: Iterable[str], limit: int = 3) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_output_dir(target: str | Path, command: str, *, sources: Iterable[str | Path] = (), flag: str = "--output",
                     layout: Callable[[Path], Iterable[str] | None] | None = None) -> OutputDir:
    """The one output rule, checked before any work (read-only): ``target`` (a link is followed) must be a new
    folder, an empty one, or an earlier output of ``command`` — its manifest names the command, or ``layout``
    (the command's own files, for outputs without a manifest) returns the names it owns. It must not be, nor
    hold, any of ``sources`` (what the command reads). Anything else is a :class:`UsageError` (exit 2)."""
    given = Path(target)
    real = real_path(given)
    srcs = tuple(real_path(s) for s in sources)
    what = f"a new or empty folder, or an earlier output of sdnet {command}"
    if real.exists() and not real.is_dir():
        raise UsageError(f"{flag} {given} is a file; pass {what}")
    for src, s in zip(sources, srcs):
        if s == real or real in s.parents:
            what_it_is = "is what this command reads" if s == real else f"holds {src}, which this command reads"
            raise UsageError(f"{flag} {given} {what_it_is}; pass another folder (nothing was changed)")
    out = OutputDir(given, real, command, frozenset(), flag, srcs, layout)
    entries = {n for n in os.listdir(real) if not is_temporary(n)} if real.is_dir() else set()
    if not entries:
        return out
    manifest = read_manifest(real)
    if manifest is not None and manifest[0] != command:
        raise UsageError(f"{flag} {given} is an output of sdnet {manifest[0]}; pass {what}")
    owned = manifest[1] if manifest is not None else (layout(real) if layout is not None else None)
    if owned is None:
        raise UsageError(f"{flag} {given} holds other files ({_shown(entries)}) that sdnet {command} did not write; "
                         f"pass {what} (nothing was changed)")
    return OutputDir(given, real, command, frozenset(owned), flag, srcs, layout)


def write_output(out: OutputDir, write: Callable[[Path], T], manifest: bool = True) -> T:
    """Fill ``out`` as a whole under its lock: the rule is checked again, ``write(staged)`` fills a new folder
    beside it, the manifest records what ``write`` wrote (``manifest=False``: a command whose layout names what
    it owns, like a model directory, leaves none), the entries the command does not own are carried over, and
    one switch makes it the output (:func:`~sdnet_cli.fsio.staged_dir`). A failure or a kill before the switch
    leaves the old folder."""
    with OutputLock(out.path):
        out = check_output_dir(out.given, out.command, sources=out.sources, flag=out.flag, layout=out.layout)
        with staged_dir(out.path, out.owned | {MANIFEST} if manifest else out.owned, out.command) as staged:
            result = write(staged)
            if manifest:
                written = sorted(n for n in os.listdir(staged) if n != MANIFEST)
                atomic_write_json(staged / MANIFEST, {"command": out.command, "files": written}, indent=1)
    return result

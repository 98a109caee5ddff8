"""Outputs that are replaced as a whole, one process per output folder, and the one output rule.

- :func:`atomic_write_bytes`: one file through a temporary name in the same folder, then ``rename``.
- :func:`staging_dir` + :func:`replace_dir`: a whole folder is written beside the target (a hidden sibling with
  a short name, ``.sdnet.tmp-<pid>-<random>``, whatever the target is called) and switched over in one step —
  ``renameat2(RENAME_EXCHANGE)`` where the kernel and file system have it, else two renames with a backup that
  :func:`clean_stale` puts back. A SIGKILL at any instant leaves the complete old or the complete new folder.
  A target that is a symlink is written through: its target folder is replaced, the link stays.
- :func:`clean_stale`: removes the temporaries of processes that no longer run (and restores a backup left
  between the two renames of the fallback); names are compared as plain strings, never as glob patterns.
- The output rule (:func:`check_output_dir`, :func:`write_output`): a command writes into a new folder, an
  empty one, or its own earlier output (recognised by the manifest ``.sdnet-output.json`` it leaves there, or
  by the command's own layout). In its own earlier output it replaces the files it wrote and carries every
  other entry over; any other folder is refused (exit 2), as is the model being read or a folder holding it.
  Nothing of the user's is ever deleted.
- :class:`~sdnet_cli.outlock.OutputLock` (re-exported here): one process per output folder.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from .errors import UsageError
from .outlock import OutputLock, OutputLocked  # noqa: F401 - part of this module's interface

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
TMP_PREFIX = ".sdnet.tmp-"
"""Staging folders: ``.sdnet.tmp-<pid>-<8 hex>``, beside the folder they replace."""
OLD_PREFIX = ".sdnet.old-"
"""Backups of the two-rename fallback: ``.sdnet.old-<pid>-<8 hex>`` (+ ``.to`` naming the folder it belongs to)."""
MANIFEST = ".sdnet-output.json"
"""What a command wrote into its output folder: ``{"command": NAME, "files": [top-level names]}``."""
T = TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp makes 0600


def real_path(path: str | Path) -> Path:
    """``path`` absolute with every symlink resolved: the folder an output link points at is the one written."""
    return Path(os.path.realpath(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (fsync), then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sdnet.", suffix=".tmp")
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


def _temp_name(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"


def staging_dir(target: Path) -> Path:
    """A new empty hidden sibling of ``target`` (of its real folder) to write the replacement into; stale
    temporaries of dead processes beside it are removed first."""
    target = real_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    path = target.parent / _temp_name(TMP_PREFIX)
    path.mkdir()
    return path


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
    """Make the complete folder ``staged`` become ``target`` (its real folder: a link is written through) in one
    switch; the old content is deleted."""
    staged, target = Path(staged), real_path(target)
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        shutil.rmtree(staged, ignore_errors=True)  # now holds the old content
        return
    backup = target.parent / _temp_name(OLD_PREFIX)
    note = backup.with_name(backup.name + ".to")
    atomic_write_bytes(note, os.fsencode(target.name))  # which folder the backup is, should we die mid-way
    os.rename(target, backup)
    os.rename(staged, target)
    shutil.rmtree(backup, ignore_errors=True)
    note.unlink(missing_ok=True)


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


def _owner(name: str, prefix: str) -> int | None:
    """The PID in ``<prefix><pid>-<hex>[.to]`` (``None`` when the rest is not that)."""
    pid, sep, _ = name[len(prefix):].partition("-")
    return int(pid) if sep and pid.isdigit() else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _restore_or_drop(backup: Path) -> None:
    """A dead process's backup: put it back where its ``.to`` note says when that folder is missing, else drop."""
    note = backup.with_name(backup.name + ".to")
    if backup.is_dir() and note.is_file():
        name = os.fsdecode(note.read_bytes())
        if not name or "/" in name or name in (".", ".."):
            return  # a damaged note: never delete what may be someone's only copy
        if not (backup.parent / name).exists():
            os.rename(backup, backup.parent / name)
        else:
            shutil.rmtree(backup, ignore_errors=True)
    elif backup.is_dir():
        return  # no note: never delete what may be someone's only copy
    note.unlink(missing_ok=True)


def clean_stale(target: Path) -> None:
    """Remove the temporaries that dead processes left beside ``target`` (its real folder); put a backup back
    when its folder went missing. Names are matched as plain prefixes (a user's ``vz[1]`` is no pattern);
    staging folders of earlier versions (``.<name>.tmp-<pid>-…``, ``.<name>.old-…``) are included."""
    target = real_path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    legacy_tmp, legacy_old = f".{target.name}.tmp-", f".{target.name}.old-"
    for name in sorted(os.listdir(parent)):
        for prefix, kind in ((TMP_PREFIX, "tmp"), (legacy_tmp, "tmp"), (OLD_PREFIX, "old"), (legacy_old, "legacy")):
            if name.startswith(prefix):
                pid = _owner(name, prefix)
                if pid is not None and not _pid_alive(pid):
                    _clean_one(parent / name, kind, target)
                break


def _clean_one(path: Path, kind: str, target: Path) -> None:
    if kind == "tmp":
        _remove(path)
    elif kind == "old":
        base = path.with_name(path.name[:-3]) if path.name.endswith(".to") else path
        _restore_or_drop(base)
    elif not target.exists() and path.is_dir():
        os.rename(path, target)  # an earlier version's backup, killed between its two renames
    else:
        _remove(path)


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


def _is_temporary(name: str) -> bool:
    """Our own leftovers inside a folder: staging/backups and the temporaries of atomic writes."""
    return name.startswith((TMP_PREFIX, OLD_PREFIX)) or (name.startswith(".") and name.endswith(".tmp"))


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
    entries = {n for n in os.listdir(real) if not _is_temporary(n)} if real.is_dir() else set()
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


def carry_over(old: Path, new: Path, owned: Iterable[str], command: str = "sdnet") -> list[str]:
    """Hard-link (else copy) every entry of ``old`` that ``owned`` does not name into ``new`` (folders
    recursively, links as links); our temporaries are left behind. An entry whose name ``new`` already has is
    a :class:`UsageError` (the user's file is never overwritten). Returns the names carried over."""
    owned, carried = set(owned), []
    for name in sorted(os.listdir(old)):
        if name in owned or _is_temporary(name):
            continue
        src, dst = old / name, new / name
        if os.path.lexists(dst):
            raise UsageError(f"{old / name} is not a file of sdnet {command} but it now writes that name; move it "
                             "and run again (nothing was changed)")
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_dir():
            shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(src), str(dst))
        carried.append(name)
    return carried


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_output(out: OutputDir, write: Callable[[Path], T], manifest: bool = True) -> T:
    """Fill ``out`` as a whole under its lock: the rule is checked again, ``write(staged)`` fills a new folder
    beside it, the entries the command does not own are carried over, the manifest records what ``write``
    wrote (``manifest=False``: a command whose layout names what it owns, like a model directory, leaves none),
    and one switch makes it the output. A failure or a kill before the switch leaves the old folder."""
    with OutputLock(out.path):
        out = check_output_dir(out.given, out.command, sources=out.sources, flag=out.flag, layout=out.layout)
        staged = staging_dir(out.path)
        try:
            result = write(staged)
            written = sorted(n for n in os.listdir(staged) if n != MANIFEST)
            if out.path.is_dir():
                carry_over(out.path, staged, out.owned, out.command)
            if manifest:
                record = {"command": out.command, "files": written}
                atomic_write_bytes(staged / MANIFEST, (json.dumps(record, indent=1) + "\n").encode())
            replace_dir(staged, out.path)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    return result

"""Files and folders replaced as a whole: a SIGKILL at any instant leaves the complete old or the complete new.

- :func:`atomic_write_bytes` (and :func:`atomic_write_json`, :func:`write_jsonl`; JSON bytes: :func:`json_bytes`): one file through a temporary
  name in the same folder, then ``rename``. :func:`write_file`: a new file inside a staging folder (no rename).
- :class:`Staged` / :func:`staged_dir`: "stage then switch", the one way a folder is replaced. The new content
  is written into a hidden sibling with a short name (``.sdnet.tmp-<pid>-<random>``, whatever the target is
  called, :func:`staging_dir`) and switched in in one step (:func:`replace_dir`: ``renameat2(RENAME_EXCHANGE)``
  where the kernel and file system have it, else two renames with a backup that :func:`clean_stale` puts back).
  Entries of the old folder the writer does not own are carried over first (:func:`carry_over`), so nothing
  of the user's is lost. A target that is a symlink is written through: its target folder is replaced.
- :func:`clean_stale`: removes the temporaries of processes that no longer run (and restores a backup left
  between the two renames of the fallback); names are compared as plain strings, never as glob patterns.
- :func:`file_digest`: a file's hash, read in chunks.

What a command may write where (the output rule) and one process per output folder: :mod:`sdnet_cli.outputs`.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UsageError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
TMP_PREFIX = ".sdnet.tmp-"
"""Staging folders: ``.sdnet.tmp-<pid>-<8 hex>``, beside the folder they replace."""
OLD_PREFIX = ".sdnet.old-"
"""Backups of the two-rename fallback: ``.sdnet.old-<pid>-<8 hex>`` (+ ``.to`` naming the folder it belongs to)."""


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


def json_bytes(obj: Any, indent: int = 2) -> bytes:
    """The bytes of a JSON file we write: ``json.dumps(obj, indent=indent)`` and a final newline, UTF-8."""
    return (json.dumps(obj, indent=indent) + "\n").encode()


def atomic_write_json(path: Path, obj: Any, indent: int = 2) -> None:
    """:func:`json_bytes` of ``obj`` written atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, json_bytes(obj, indent))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite a JSON-lines file (one object per line) atomically."""
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path`` inside a staging folder (flushed to disk; no rename needed: the
    folder's switch publishes it)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def file_digest(path: str | Path, algorithm: str, chunk: int = 1 << 20) -> str:
    """Hex digest (``hashlib`` algorithm name, e.g. ``md5``, ``sha256``) of a file's content, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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


def is_temporary(name: str) -> bool:
    """Our own leftovers inside a folder: staging/backups and the temporaries of atomic writes."""
    return name.startswith((TMP_PREFIX, OLD_PREFIX)) or (name.startswith(".") and name.endswith(".tmp"))


def carry_over(old: Path, new: Path, owned: Iterable[str], command: str = "sdnet") -> list[str]:
    """Hard-link (else copy) every entry of ``old`` that ``owned`` does not name into ``new`` (folders
    recursively, links as links); our temporaries are left behind. An entry whose name ``new`` already has is
    a :class:`UsageError` (the user's file is never overwritten). Returns the names carried over."""
    owned, carried = set(owned), []
    for name in sorted(os.listdir(old)):
        if name in owned or is_temporary(name):
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


class Staged:
    """The replacement of the folder ``target`` while it is written: ``path``, a new empty hidden sibling
    (:func:`staging_dir`). :meth:`commit` switches it in as a whole, :meth:`discard` drops it; until the
    switch the old folder is untouched, and a kill leaves a staging folder that :func:`clean_stale` removes."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        if self.target.exists() and not self.target.is_dir():
            raise UsageError(f"{self.target} is a file, not a folder; pass another path (nothing was changed)")
        self.path = staging_dir(self.target)

    def commit(self, owned: Iterable[str] | None = None, command: str = "sdnet") -> None:
        """Make ``path`` the folder ``target`` in one switch (:func:`replace_dir`). With ``owned`` (the names
        the writer owns), every other entry of the old folder is carried over first (:func:`carry_over`)."""
        old = real_path(self.target)
        if owned is not None and old.is_dir():
            carry_over(old, self.path, owned, command)
        replace_dir(self.path, self.target)

    def discard(self) -> None:
        """Drop the staging folder (the old folder stays as it was)."""
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def staged_dir(target: str | Path, owned: Iterable[str] | None = None, command: str = "sdnet") -> Iterator[Path]:
    """``with staged_dir(target) as path:`` fill ``path``; on success it becomes ``target``
    (:meth:`Staged.commit` with ``owned``), on any exception or interrupt it is dropped (:meth:`Staged.discard`)."""
    staged = Staged(target)
    try:
        yield staged.path
        staged.commit(owned, command)
    except BaseException:
        staged.discard()
        raise

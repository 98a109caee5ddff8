"""Dataset archives from outside: bounded download, checksum, safe and atomic unpacking, mirror addresses.

Every dataset download (CIFAR-10/100, CIFAR-10-C/100-C) goes through :func:`fetch_archive`:

- the bytes come through :func:`sdnet_cli.netio.fetch_to_file` (time bound on no progress, bounded
  retries, resumable ``.part`` file, one line naming what the server did);
- the archive becomes usable only when its MD5 is the published one (an archive already on disk is
  checked the same way before it is unpacked);
- :func:`unpack_tar` writes regular files and folders only, nothing outside the target (no ``..``, absolute
  paths, links or devices), into a hidden staging folder beside the target, then renames each top-level
  folder into place — a kill leaves no half-unpacked dataset, and an existing folder is never replaced.

Mirrors: ``SDNET_CIFAR_URL`` (base address of ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``) and
``SDNET_CIFAR_C_URL`` (of ``CIFAR-10-C.tar`` / ``CIFAR-100-C.tar``) replace the official hosts; the
checksums stay the official ones. ``SDNET_DOWNLOAD_TIMEOUT`` (seconds) bounds a dataset download that has no
``--timeout`` flag (``sdnet train``/``eval``). All are read when a download starts.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from ..errors import NetworkError, UsageError
from ..fsio import Staged, file_digest
from ..netio import NetBounds, Transfer, fetch_to_file

Progress = Callable[[int, "int | None"], None]  # (bytes done, total bytes or None)
TIMEOUT_ENV = "SDNET_DOWNLOAD_TIMEOUT"
ENV_LONGER = f"{TIMEOUT_ENV}=SECONDS"
"""The advice after a stall of a download bounded by :func:`env_bounds`."""


def mirror_url(env: str, official: str, filename: str) -> str:
    """``$env/filename`` when the environment variable ``env`` is set (an ``http(s)://`` base), else ``official``."""
    base = os.environ.get(env, "").strip()
    if not base:
        return official
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise UsageError(f"{env}={base!r} is not an http(s):// address; set it to the base URL of a mirror "
                         f"that serves {filename}, or unset it")
    return f"{base.rstrip('/')}/{filename}"


def env_bounds() -> NetBounds:
    """Download bounds from ``SDNET_DOWNLOAD_TIMEOUT`` (seconds without new data; default 60 s) and 2 retries."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return NetBounds()
    try:
        return NetBounds(float(raw))
    except (ValueError, UsageError):
        raise UsageError(f"{TIMEOUT_ENV}={raw!r}: expected a finite number of seconds > 0") from None


def download_file(url: str, dest: str | Path, md5: str | None = None, progress: Progress | None = None,
                  bounds: NetBounds | None = None, longer: str = "--timeout SECONDS") -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming it with HTTP ``Range``, bounded by ``bounds``.

    At most ``bounds.timeout`` seconds without a new byte and ``bounds.retries`` more attempts of a failed
    request (resuming each time), then a :class:`~sdnet_cli.errors.NetworkError` naming what the server did;
    the partial file stays for a later call to resume. The file becomes ``dest`` only when complete and its
    MD5 equals ``md5`` (when given); a wrong checksum deletes the partial file. ``longer``: how the user
    allows a longer wait (named after a stall).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    report = (lambda _what, done, total: progress(done, total)) if progress else None
    fetch_to_file(url, part, Transfer(bounds or NetBounds(), dest.name, report, longer=longer))
    if md5 is not None:
        got = file_digest(part, "md5")
        if got != md5.lower():
            part.unlink(missing_ok=True)
            raise NetworkError(f"checksum mismatch for {url}: md5 {got}, expected {md5}; the partial file was "
                               "removed, run again to download afresh")
    os.replace(part, dest)
    return dest


def fetch_archive(url: str, archive: Path, md5: str, progress: Progress | None = None,
                  bounds: NetBounds | None = None, longer: str = "--timeout SECONDS") -> Path:
    """``archive`` with the MD5 ``md5``: the file already there (checked) or downloaded by :func:`download_file`."""
    if archive.is_file():
        got = file_digest(archive, "md5")
        if got != md5.lower():
            raise UsageError(f"{archive} has md5 {got}, not the published {md5}: it is damaged or another file; "
                             "remove it and run again to download a fresh copy")
        return archive
    return download_file(url, archive, md5, progress, bounds, longer)


def _safe_members(tar: tarfile.TarFile, root: Path) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        target = (root / m.name).resolve()
        if not (m.isfile() or m.isdir()) or root.resolve() not in (target, *target.parents):
            raise UsageError(f"refusing to unpack {m.name!r}: not a plain file inside the archive folder")
        members.append(m)
    return members


def _top_names(members: list[tarfile.TarInfo]) -> list[str]:
    return sorted({Path(m.name).parts[0] for m in members if Path(m.name).parts and Path(m.name).parts[0] != "."})


def unpack_tar(archive: str | Path, root: str | Path, required: tuple[str, ...] = ()) -> list[Path]:
    """Unpack a tar archive (any compression) into ``root``; returns the top-level paths it made.

    Plain files and folders only, nothing outside ``root``; unpacked beside its target first and renamed into
    place only when every ``required`` path (relative to ``root``) is a file in it. A top-level name that
    already exists in ``root`` is refused (``UsageError``), never replaced.
    """
    archive, root = Path(archive), Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Staged(root / f"{archive.name}.unpacked")  # a hidden sibling in root's real folder
    staged = staging.path
    try:
        try:
            with tarfile.open(archive) as tar:
                members = _safe_members(tar, staged)
                names = _top_names(members)
                taken = [n for n in names if os.path.lexists(root / n)]
                if taken:
                    raise UsageError(f"{root / taken[0]} already exists but is incomplete; move it away (nothing "
                                     f"is deleted for you) and run again to unpack a fresh copy from {archive.name}")
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staged, members=members, **extra)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise UsageError(f"{archive} could not be unpacked ({type(e).__name__}: {e}); remove it and run "
                             "again to download a fresh copy") from None
        lacking = [r for r in required if not (staged / r).is_file()]
        if lacking:
            raise UsageError(f"{archive} holds no {lacking[0]}: it is not the expected archive; remove it and run "
                             "again to download a fresh copy")
        made = []
        for name in names:
            try:
                os.rename(staged / name, root / name)
            except OSError:
                if not os.path.lexists(root / name):
                    raise
                raise UsageError(f"{root / name} appeared while {archive.name} was unpacked (another process?); "
                                 "nothing was replaced, run again") from None
            made.append(root / name)
        return made
    finally:
        staging.discard()  # empty after a success: every top-level folder was renamed out of it

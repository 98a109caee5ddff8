"""Downloading CIFAR-10/100: the published archive through the bounded client, MD5-checked, unpacked safely.

Replaces torchvision's downloader (no timeout, no bound on retries). The archive
(``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``) comes from ``$SDNET_CIFAR_URL`` (a mirror's
base address) or the official host, through :func:`sdnet_cli.data.download.fetch_archive` (no new data for
``$SDNET_DOWNLOAD_TIMEOUT`` seconds, default 60, and 2 retries without progress, then one line naming what
the server did: a :class:`~sdnet_cli.errors.NetworkError`, exit code 1); it must have the MD5 torchvision
checks. It is unpacked beside the data root and its folder renamed into place once complete, then removed.
"""

from __future__ import annotations

from pathlib import Path

from .cifar import LAYOUTS, OFFICIAL_BASE
from .download import ENV_LONGER, Progress, env_bounds, fetch_archive, mirror_url, unpack_tar
from ..errors import NetworkError, UsageError
from ..netio import NetBounds

URL_ENV = "SDNET_CIFAR_URL"


def cifar_url(name: str) -> str:
    """Where the archive of ``name`` is fetched from: ``$SDNET_CIFAR_URL/<archive>`` or the official address."""
    archive = LAYOUTS[name].archive
    return mirror_url(URL_ENV, f"{OFFICIAL_BASE}/{archive}", archive)


def download_cifar(name: str, root: str | Path, progress: Progress | None = None, bounds: NetBounds | None = None,
                   md5: str | None = None) -> Path:
    """Fetch, check and unpack CIFAR ``name`` into ``root``; returns ``root/<folder>``.

    ``md5`` overrides the published checksum (tests serve a small archive); ``bounds`` defaults to
    :func:`~sdnet_cli.data.download.env_bounds`. Never replaces an existing folder.
    """
    layout = LAYOUTS[name]
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"data root {root} is a file; --data-root expects the folder that holds {layout.folder}/")
    folder = root / layout.folder
    if folder.exists() or folder.is_symlink():
        raise UsageError(f"{folder} already exists; move it away (nothing is deleted for you) to download afresh")
    url = cifar_url(name)
    try:
        archive = fetch_archive(url, root / layout.archive, md5 or layout.md5, progress, bounds or env_bounds(),
                                "--timeout SECONDS" if bounds else ENV_LONGER)
    except NetworkError as e:
        raise NetworkError(f"{name} is not in {root}: {e}; or fetch {url} yourself and extract it into "
                           f"{root}") from None
    unpack_tar(archive, root, required=tuple(f"{layout.folder}/{f}" for f in layout.files))
    archive.unlink(missing_ok=True)
    return folder

"""The distributed CIFAR-10-C / CIFAR-100-C files: validate, load, download (bounded, resumable, checksummed).

Layout (Hendrycks & Dietterich 2019, Zenodo records 2535967 and 3555552): a folder ``CIFAR-10-C/``
with ``<corruption>.npy`` uint8 ``(5·n, H, W, 3)`` (rows ``(s−1)·n … s·n−1`` are severity ``s``, each
block the ``n`` clean test images in order; n = 10,000 for CIFAR) and ``labels.npy`` ``(5·n,)``.
Arrays are opened memory-mapped, so only the severity asked for is read.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MissingFileError, NetworkError, UsageError
from .checks import check_labels
from ..models.files import file_digest
from ..netio import NetBounds, Transfer, fetch_to_file

NUM_SEVERITIES = 5
Progress = Callable[[int, int | None], None]  # (bytes done, total bytes or None)


@dataclass(frozen=True)
class Archive:
    """One official archive: where it is, its checksum, and the folder it unpacks to."""

    url: str
    md5: str
    size: int | None
    folder: str


ARCHIVES: dict[str, Archive] = {
    "cifar10": Archive("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1",
                       "56bf5dcef84df0e2308c6dcbcbbd8499", 2_918_471_680, "CIFAR-10-C"),
    "cifar100": Archive("https://zenodo.org/records/3555552/files/CIFAR-100-C.tar?download=1",
                        "11f0ed0f1191edbf9fa23466ae6021d3", None, "CIFAR-100-C"),
}


# -- reading ----------------------------------------------------------------------------------------
def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` from a ``.npy`` header, raising ``ValueError`` if it is unreadable."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(f)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, EOFError) as e:
        raise UsageError(f"{path} is not a readable .npy file ({e}); re-download it (--download)") from None
    if fortran:
        raise UsageError(f"{path} is stored in Fortran order; expected the distributed C-order layout")
    return tuple(shape), np.dtype(dtype), offset


def open_npy(path: str | Path) -> np.ndarray:
    """Memory-map a ``.npy`` file after checking that it exists and is not truncated."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} not found")
    shape, dtype, offset = _npy_header(path)
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual < expected:
        raise UsageError(f"{path} is truncated: {actual} bytes, the header promises {expected}; "
                         "re-download it (--download)")
    return np.load(path, mmap_mode="r")


def resolve_cifar_c_dir(directory: str | Path, dataset: str | None = None) -> Path:
    """The folder holding ``labels.npy``: ``directory`` itself or its ``CIFAR-10-C``/``CIFAR-100-C`` child."""
    directory = Path(directory)
    if (directory / "labels.npy").is_file():
        return directory
    folders = [ARCHIVES[dataset].folder] if dataset in ARCHIVES else [a.folder for a in ARCHIVES.values()]
    for folder in folders:
        if (directory / folder / "labels.npy").is_file():
            return directory / folder
    if not directory.is_dir():
        raise MissingFileError(f"CIFAR-C directory {directory} not found (pass --download to fetch it)")
    raise MissingFileError(f"{directory} holds no labels.npy (nor {', '.join(folders)}/labels.npy): "
                            "point --cifar-c-dir at the unpacked CIFAR-10-C folder or pass --download")


def load_labels(directory: str | Path, num_classes: int | None = None) -> np.ndarray:
    """``labels.npy`` as int64 ``(5·n,)``, checked to be 1-D, a multiple of 5 long, integers (float labels are
    refused, not truncated) and in ``0 … num_classes − 1`` (``None``: only ``≥ 0``)."""
    path = Path(directory) / "labels.npy"
    labels = open_npy(path)
    if labels.ndim != 1 or len(labels) == 0 or len(labels) % NUM_SEVERITIES:
        raise UsageError(f"{path} has shape {labels.shape}; expected (5·n,) "
                         "labels, the test labels repeated for severities 1-5")
    return check_labels(np.asarray(labels), num_classes or np.iinfo(np.int64).max, str(path))


def check_corruption_file(directory: str | Path, corruption: str, num_labels: int) -> np.ndarray:
    """Memory-mapped ``<corruption>.npy`` after checking dtype uint8, shape ``(num_labels, H, W, 3)``."""
    path = Path(directory) / f"{corruption}.npy"
    if not path.is_file():
        raise MissingFileError(f"{path} not found: the CIFAR-C folder lacks {corruption!r} "
                                "(choose others with --corruptions or re-download with --download)")
    data = open_npy(path)
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[-1] != 3:
        raise UsageError(f"{path} holds {data.dtype} {data.shape}; expected uint8 (N, H, W, 3) images")
    if data.shape[0] != num_labels:
        raise UsageError(f"{path} has {data.shape[0]} images but labels.npy has {num_labels} labels; "
                         "the two must have the same length")
    return data


def load_cifar_c(directory: str | Path, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(n, H, W, 3)`` and labels int64 ``(n,)`` of one corruption at ``severity`` (1…5)."""
    if not 1 <= int(severity) <= NUM_SEVERITIES:
        raise UsageError(f"severity must be within 1-5, got {severity}")
    labels = load_labels(directory)
    data = check_corruption_file(directory, corruption, len(labels))
    n = len(labels) // NUM_SEVERITIES
    rows = slice((severity - 1) * n, severity * n)
    return np.array(data[rows]), labels[rows]


def validate_cifar_c_dir(directory: str | Path, corruptions: list[str], dataset: str | None = None) -> Path:
    """Resolve the folder and check ``labels.npy`` and every ``<corruption>.npy`` before a run starts."""
    folder = resolve_cifar_c_dir(directory, dataset)
    labels = load_labels(folder, {"cifar10": 10, "cifar100": 100}.get(dataset or ""))
    for name in corruptions:
        check_corruption_file(folder, name, len(labels))
    return folder


# -- downloading ------------------------------------------------------------------------------------


def download_file(url: str, dest: str | Path, md5: str | None = None, progress: Progress | None = None,
                  bounds: NetBounds | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming it with HTTP ``Range``, bounded by ``bounds``.

    At most ``bounds.timeout`` seconds without a new byte and ``bounds.retries`` more attempts of a failed
    request (resuming each time), then a :class:`~sdnet_cli.errors.NetworkError` naming what the server did;
    the partial file stays for a later call to resume. The file becomes ``dest`` only when complete and its
    MD5 equals ``md5`` (when given); a wrong checksum deletes the partial file.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    report = (lambda _what, done, total: progress(done, total)) if progress else None
    fetch_to_file(url, part, Transfer(bounds or NetBounds(), dest.name, report))
    if md5 is not None:
        got = file_digest(part, "md5")
        if got != md5.lower():
            part.unlink(missing_ok=True)
            raise NetworkError(f"checksum mismatch for {url}: md5 {got}, expected {md5}; the partial file was "
                               "removed, run again to download afresh")
    os.replace(part, dest)
    return dest


def _safe_members(tar: tarfile.TarFile, root: Path) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        target = (root / m.name).resolve()
        if not (m.isfile() or m.isdir()) or root.resolve() not in (target, *target.parents):
            raise UsageError(f"refusing to unpack {m.name!r}: not a plain file inside the archive folder")
        members.append(m)
    return members


def unpack_tar(archive: str | Path, root: str | Path) -> None:
    """Unpack a tar archive into ``root`` (plain files and folders only, nothing outside ``root``)."""
    root = Path(root)
    tmp = root / f".{Path(archive).name}.unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, members=_safe_members(tar, tmp))
        for child in tmp.iterdir():
            target = root / child.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(child, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_cifar_c(root: str | Path, dataset: str = "cifar10", progress: Progress | None = None,
                     url: str | None = None, md5: str | None = None, keep_archive: bool = False,
                     bounds: NetBounds | None = None) -> Path:
    """Fetch, check and unpack the official CIFAR-10-C (or ``cifar100``: CIFAR-100-C) archive under ``root``.

    Returns the unpacked folder (``root/CIFAR-10-C``). Skips everything when it already holds
    ``labels.npy``. ``url``/``md5`` override the official ones (tests use a local server); ``bounds``: the
    network bounds (default: 60 s without progress, 2 retries).
    """
    if dataset not in ARCHIVES:
        raise UsageError(f"--download knows {', '.join(ARCHIVES)} (CIFAR-10-C, CIFAR-100-C), not {dataset!r}")
    spec = ARCHIVES[dataset]
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file; pass a folder to download CIFAR-C into (created if missing)")
    folder = root / spec.folder
    if (folder / "labels.npy").is_file():
        return folder
    archive = root / f"{spec.folder}.tar"
    if not archive.is_file():
        download_file(url or spec.url, archive, md5 or spec.md5, progress, bounds)
    unpack_tar(archive, root)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    if not (folder / "labels.npy").is_file():
        raise UsageError(f"{archive.name} did not unpack to {folder}/labels.npy")
    return folder

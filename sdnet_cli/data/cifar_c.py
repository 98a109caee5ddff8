"""The distributed CIFAR-10-C / CIFAR-100-C files: validate, load, download (bounded, resumable, checksummed).

Layout (Hendrycks & Dietterich 2019, Zenodo records 2535967 and 3555552): a folder ``CIFAR-10-C/``
with ``<corruption>.npy`` uint8 ``(5·n, H, W, 3)`` (rows ``(s−1)·n … s·n−1`` are severity ``s``, each
block the ``n`` clean test images in order; n = 10,000 for CIFAR) and ``labels.npy`` ``(5·n,)``.
Arrays are opened memory-mapped, so only the severity asked for is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MissingFileError, UsageError
from .checks import check_labels
from .datasets import DATASETS, dataset_info
from .download import download_file, fetch_archive, mirror_url, unpack_tar
from ..netio import NetBounds

__all__ = ["ARCHIVES", "check_corruption_file", "download_cifar_c", "download_file", "load_cifar_c", "load_labels",
           "open_npy", "resolve_cifar_c_dir", "unpack_tar", "validate_cifar_c_dir"]

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
    if np.dtype(dtype).hasobject:
        raise UsageError(f"{path} holds Python objects (dtype {np.dtype(dtype)}); refusing to read it (that needs "
                         "pickle): expected integer labels / uint8 images as distributed")
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
    return np.load(path, mmap_mode="r", allow_pickle=False)


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


def _check_images(path: Path, data: np.ndarray, num_labels: int, image_size: int | None) -> None:
    """uint8 ``(num_labels, S, S, 3)`` channels-last, ``S = image_size`` when given; else one line, exit 2."""
    if data.dtype != np.uint8:
        raise UsageError(f"{path} holds {data.dtype} values; expected uint8 images (0-255) as distributed")
    if data.ndim != 4:
        raise UsageError(f"{path} has shape {data.shape}; expected uint8 (N, H, W, 3) images")
    if data.shape[-1] != 3:
        hint = " (channels first?)" if data.shape[1] == 3 else ""
        raise UsageError(f"{path} has shape {data.shape}{hint}; expected channels-last (N, H, W, 3) images as "
                         "distributed; transpose it to (N, H, W, 3)")
    h, w = data.shape[1:3]
    if image_size is not None and (h, w) != (image_size, image_size):
        raise UsageError(f"{path} holds {h}x{w} images but the model takes {image_size}x{image_size}; use the "
                         f"files made for this model's input size (or pass --image-size {h} if it was trained at it)")
    if h != w:
        raise UsageError(f"{path} holds {h}x{w} images; expected square images (N, S, S, 3)")
    if data.shape[0] != num_labels:
        raise UsageError(f"{path} has {data.shape[0]} images but labels.npy has {num_labels} labels; "
                         "the two must have the same length")


def check_corruption_file(directory: str | Path, corruption: str, num_labels: int,
                          image_size: int | None = None) -> np.ndarray:
    """Memory-mapped ``<corruption>.npy`` after checking dtype uint8, shape ``(num_labels, S, S, 3)`` (channels
    last) and, when given, ``S = image_size`` — from the header only, no image is read."""
    path = Path(directory) / f"{corruption}.npy"
    if not path.is_file():
        raise MissingFileError(f"{path} not found: the CIFAR-C folder lacks {corruption!r} "
                                "(choose others with --corruptions or re-download with --download)")
    data = open_npy(path)
    _check_images(path, data, num_labels, image_size)
    return data


def load_cifar_c(directory: str | Path, corruption: str, severity: int, num_classes: int | None = None,
                 image_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(n, S, S, 3)`` and labels int64 ``(n,)`` of one corruption at ``severity`` (1…5), checked
    as :func:`validate_cifar_c_dir` does."""
    if not 1 <= int(severity) <= NUM_SEVERITIES:
        raise UsageError(f"severity must be within 1-5, got {severity}")
    labels = load_labels(directory, num_classes)
    data = check_corruption_file(directory, corruption, len(labels), image_size)
    n = len(labels) // NUM_SEVERITIES
    rows = slice((severity - 1) * n, severity * n)
    return np.array(data[rows]), labels[rows]


def expected_input(dataset: str | None, image_size: int | None = None,
                   num_classes: int | None = None) -> tuple[int | None, int | None]:
    """``(image_size, num_classes)`` the files must match: the given ones, else the dataset's (CIFAR: 32×32;
    10 or 100 classes; another dataset: its classes, any size)."""
    if dataset in DATASETS:
        info = dataset_info(dataset)
        num_classes = num_classes or info.num_classes
        if image_size is None and dataset in ARCHIVES:
            image_size = info.image_size
    return image_size, num_classes


def validate_cifar_c_dir(directory: str | Path, corruptions: list[str], dataset: str | None = None,
                         image_size: int | None = None, num_classes: int | None = None) -> Path:
    """Resolve the folder and check ``labels.npy`` and every ``<corruption>.npy`` before a run starts.

    Labels: integers (never objects: no pickle) in ``0 … num_classes − 1``; images: uint8 channels-last
    ``(N, S, S, 3)`` with ``S = image_size``. Both default to the dataset's (:func:`expected_input`): pass the
    model's input size and classes when they differ. Each problem is one :class:`UsageError` line.
    """
    image_size, num_classes = expected_input(dataset, image_size, num_classes)
    return _check_folder(resolve_cifar_c_dir(directory, dataset), corruptions, num_classes, image_size)


def _check_folder(folder: Path, corruptions: list[str], num_classes: int | None, image_size: int | None) -> Path:
    labels = load_labels(folder, num_classes)
    for name in corruptions:
        check_corruption_file(folder, name, len(labels), image_size)
    return folder


# -- downloading ------------------------------------------------------------------------------------
def download_cifar_c(root: str | Path, dataset: str = "cifar10", progress: Progress | None = None,
                     url: str | None = None, md5: str | None = None, keep_archive: bool = False,
                     bounds: NetBounds | None = None) -> Path:
    """Fetch, check and unpack the official CIFAR-10-C (or ``cifar100``: CIFAR-100-C) archive under ``root``.

    Returns the unpacked folder (``root/CIFAR-10-C``). Skips everything when it already holds
    ``labels.npy``; an existing folder without it is refused, never replaced. ``url``/``md5`` override the
    official ones (tests use a local server); ``$SDNET_CIFAR_C_URL`` names a mirror (base address of
    ``CIFAR-10-C.tar``); ``bounds``: the network bounds (default: 60 s without progress, 2 retries). The
    unpacked labels and images are checked (:func:`validate_cifar_c_dir`, any image size) before it returns.
    """
    if dataset not in ARCHIVES:
        raise UsageError(f"--download knows {', '.join(ARCHIVES)} (CIFAR-10-C, CIFAR-100-C), not {dataset!r}")
    spec = ARCHIVES[dataset]
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file; pass a folder to download CIFAR-C into (created if missing)")
    folder = root / spec.folder
    if not (folder / "labels.npy").is_file():
        if folder.exists() or folder.is_symlink():
            raise UsageError(f"{folder} exists but holds no labels.npy; move it away (nothing is deleted for you) "
                             "and run again to download a fresh copy")
        filename = f"{spec.folder}.tar"
        archive = fetch_archive(url or mirror_url("SDNET_CIFAR_C_URL", spec.url, filename), root / filename,
                                md5 or spec.md5, progress, bounds)
        unpack_tar(archive, root)
        if not keep_archive:
            archive.unlink(missing_ok=True)
        if not (folder / "labels.npy").is_file():
            raise UsageError(f"{archive.name} did not unpack to {folder}/labels.npy")
    names = sorted(p.stem for p in folder.glob("*.npy") if p.stem != "labels")
    return _check_folder(folder, names, dataset_info(dataset).num_classes, None)

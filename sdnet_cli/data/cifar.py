"""CIFAR-10/100 in the distributed Python format, read without running code: uint8 images and checked labels.

The official ``cifar-10-batches-py/`` (``data_batch_1…5``, ``test_batch``, ``batches.meta``) and
``cifar-100-python/`` (``train``, ``test``, ``meta``) files are pickles. torchvision reads them with
``pickle.load``, which runs whatever callable a crafted file names; here every file goes through
:func:`~sdnet_cli.data.safe_pickle.load_pickle` (NumPy arrays, containers, strings and numbers only) and is
then checked before use: a dict whose ``data`` is uint8 ``(N, 3072)`` (rows are ``3×32×32`` channel-major,
as torchvision reshapes them) and whose ``labels`` (CIFAR-100: ``fine_labels``, as torchvision picks them)
are ``N`` integers in ``0 … classes − 1``; the meta file names one class per class. Each problem is one
:class:`~sdnet_cli.errors.UsageError` line naming the file.

A missing folder is downloaded (when allowed) by :mod:`sdnet_cli.data.cifar_download` — bounded, MD5-checked,
unpacked safely; a folder that exists but lacks files is reported, never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_labels, check_root
from .safe_pickle import load_pickle
from ..errors import MissingFileError, UsageError
from ..netio import NetBounds

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """One CIFAR release: its folder, archive (name, MD5 as torchvision knows it) and files."""

    folder: str
    archive: str
    md5: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    meta_key: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, *self.test, self.meta)


LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout("cifar-10-batches-py", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                           tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta",
                           "label_names"),
    "cifar100": CifarLayout("cifar-100-python", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                            ("train",), ("test",), "meta", "fine_label_names"),
}
OFFICIAL_BASE = "https://www.cs.toronto.edu/~kriz"
"""Where the archives are published (``$SDNET_CIFAR_URL`` replaces it)."""


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"


def read_batch(path: Path, num_classes: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: ``(uint8 (N, 3072), int64 (N,))`` after the checks in the module doc."""
    entry = load_pickle(path)
    if not isinstance(entry, dict):
        raise UsageError(f"{path} holds {_describe(entry)}, not a CIFAR batch (a dict with 'data' and 'labels')")
    data = entry.get("data")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == PIXELS):
        raise UsageError(f"{path}: 'data' is {_describe(data) if 'data' in entry else 'missing'}; expected uint8 "
                         f"(N, {PIXELS}) images as distributed")
    key = "labels" if "labels" in entry else "fine_labels"
    if key not in entry:
        keys = ", ".join(repr(k) for k in list(entry)[:6])
        raise UsageError(f"{path} has no 'labels' (nor 'fine_labels'); its keys: {keys}")
    labels = check_labels(entry[key], num_classes, source)
    if len(labels) != len(data):
        raise UsageError(f"{path} has {len(data)} images but {len(labels)} labels; the two must have the same length")
    return data, labels


def check_meta(path: Path, key: str, num_classes: int) -> list[str]:
    """The class names of a meta file: a dict whose ``key`` lists ``num_classes`` strings."""
    meta = load_pickle(path)
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise UsageError(f"{path}: expected a dict whose {key!r} lists {num_classes} class names, found "
                         f"{_describe(names) if names is not None else _describe(meta)}")
    return list(names)


def load_cifar(name: str, split: str, root: Path, download: bool = True,
               bounds: NetBounds | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10/100 ``(uint8 (N, 32, 32, 3), int64 (N,))`` from ``root`` (torchvision layout), downloading the
    folder if it is absent and ``download`` (``bounds``: default from ``$SDNET_DOWNLOAD_TIMEOUT``)."""
    layout = LAYOUTS[name]
    root = Path(root)
    check_root(root, f"{layout.folder}/")
    folder = root / layout.folder
    url = f"{OFFICIAL_BASE}/{layout.archive}"
    how = (f"download {url} and extract it into {root} (giving {folder}), "
           f"or pass --data-root DIR pointing to the folder that holds {layout.folder}/")
    missing = [f for f in layout.files if not (folder / f).is_file()]
    if missing and (folder.exists() or folder.is_symlink()):
        raise MissingFileError(f"{folder} lacks {', '.join(missing)}: complete it, or move it away (nothing is "
                               f"deleted for you) to have it downloaded afresh; or {how}")
    if missing and not download:
        raise MissingFileError(f"{name} not found in {root} and download is off: {how}")
    if missing:
        from .cifar_download import download_cifar

        download_cifar(name, root, bounds=bounds)
    num_classes = NUM_CLASSES[name]
    check_meta(folder / layout.meta, layout.meta_key, num_classes)
    parts = [read_batch(folder / f, num_classes, f"{name} {split} labels in {folder / f}")
             for f in (layout.train if split == "train" else layout.test)]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([t for _, t in parts])
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels

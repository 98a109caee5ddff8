"""CIFAR-10/100 through torchvision's reader: uint8 images and checked labels, with errors that say what to do."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .checks import check_labels, check_root
from ..errors import UsageError

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def _cifar_class(name: str) -> Any:
    from torchvision.datasets import CIFAR10, CIFAR100

    base = CIFAR10 if name == "cifar10" else CIFAR100

    class _Cifar(base):  # type: ignore[misc, valid-type]
        """torchvision's CIFAR reader; the md5 check of the extracted files becomes an existence check
        (the downloaded archive is still md5-verified by torchvision), so small local copies load too."""

        def _check_integrity(self) -> bool:
            files = [*self.train_list, *self.test_list, [self.meta["filename"], None]]
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f, _ in files)

        def _load_meta(self) -> None:
            import pickle  # torchvision's own on-disk format, read by its own code path

            path = os.path.join(self.root, self.base_folder, self.meta["filename"])
            with open(path, "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return _Cifar


def load_cifar(name: str, split: str, root: Path, download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10/100 ``(uint8 (N, 32, 32, 3), int64 (N,))`` from ``root`` (torchvision layout), downloading if allowed."""
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    url = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" if name == "cifar10"
           else "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")
    how = (f"download {url} and extract it into {root} (giving {root / folder}), "
           f"or pass --data-root DIR pointing to the folder that holds {folder}/")
    check_root(root, f"{folder}/")
    cls = _cifar_class(name)
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
    except RuntimeError as e:
        if "not found" in str(e).lower():
            raise UsageError(f"{name} not found in {root} and download is off: {how}") from None
        raise UsageError(f"{name} in {root} is damaged ({e}): {how}") from None
    except (OSError, EOFError) as e:  # no network (URLError is an OSError), truncated file, …
        raise UsageError(f"{name} is not in {root} and could not be downloaded ({type(e).__name__}: {e}): {how}") from None
    except (pickle.UnpicklingError, KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        # what torchvision's reader raises on damaged batch files (its reading code only is in this try)
        raise UsageError(f"{name} in {root} could not be read ({type(e).__name__}: {e}): {how}") from None
    source = f"{name} {split} labels in {root / folder}"
    return np.ascontiguousarray(ds.data), check_labels(ds.targets, NUM_CLASSES[name], source)

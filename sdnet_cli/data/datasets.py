"""Datasets by name: ``digits`` (bundled), ``cifar10``, ``cifar100`` (torchvision's on-disk layout, read by
:mod:`~sdnet_cli.data.cifar` with a restricted unpickler), ``imagenet`` (ImageFolder).

- :func:`dataset_info` — classes, image size, normalisation and ``stem_type`` of a dataset.
- :func:`build_dataset` — a torch ``Dataset`` of ``(normalised float (C, H, W), int label)``.
- :func:`load_raw_images` — clean uint8 ``(N, H, W, 3)`` images + int64 labels (corruptions work on these).

Labels read from files pass :func:`~sdnet_cli.data.checks.check_labels` (integers in ``0 … num_classes − 1``)
and a ``--data-root`` that is a file is refused (:func:`~sdnet_cli.data.checks.check_root`).

Training datasets draw their augmentation from :func:`~sdnet_cli.data.transforms.sample_generator`
``(seed, epoch, index)``; call ``set_epoch(epoch)`` before each epoch (the training loop does).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from . import transforms as T
from .checks import check_labels, check_root
from .cifar import NUM_CLASSES as CIFAR_CLASSES, load_cifar
from .digits import load_digits
from ..errors import UsageError

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# digits: mean/std of all pixels of the 1,437 training images upsampled to 16×16 (load_digits('train', 16)
# / 255, float64, three identical channels); tests/test_data.py recomputes them. The same constants are used
# at every size (the default training size is the native 8×8: fastest on CPU, nothing lost by upsampling).
DIGITS_MEAN = (0.3054, 0.3054, 0.3054)
DIGITS_STD = (0.3185, 0.3185, 0.3185)

DIGITS_TRAIN_SIZE = 8
DATASETS = ("digits", "cifar10", "cifar100", "imagenet")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset."""

    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stem_type: str
    in_chans: int = 3


_INFO = {
    "digits": DatasetInfo("digits", 10, DIGITS_TRAIN_SIZE, DIGITS_MEAN, DIGITS_STD, "cifar"),
    "cifar10": DatasetInfo("cifar10", CIFAR_CLASSES["cifar10"], 32, CIFAR_MEAN, CIFAR_STD, "cifar"),
    "cifar100": DatasetInfo("cifar100", CIFAR_CLASSES["cifar100"], 32, CIFAR_MEAN, CIFAR_STD, "cifar"),
    "imagenet": DatasetInfo("imagenet", 1000, 224, IMAGENET_MEAN, IMAGENET_STD, "imagenet"),
}


def check_dataset_name(name: str) -> None:
    """Raise ``ValueError`` listing the valid names when ``name`` is unknown."""
    if name not in _INFO:
        raise UsageError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")


def dataset_info(name: str) -> DatasetInfo:
    """:class:`DatasetInfo` of ``name`` (``digits`` | ``cifar10`` | ``cifar100`` | ``imagenet``)."""
    check_dataset_name(name)
    return _INFO[name]


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise UsageError(f"split must be 'train' or 'test', got {split!r}")



# -- datasets ---------------------------------------------------------------------------------------
class _Augmented(Dataset):
    """Base: per-sample generator from ``(seed, epoch, index)`` when training, none otherwise."""

    def __init__(self, transform: T.Transform, train: bool, seed: int = 0) -> None:
        self.transform = transform
        self.train = train
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = int(epoch)

    def _gen(self, index: int) -> torch.Generator | None:
        return T.sample_generator(self.seed, self.epoch, index) if self.train else None


class ArrayDataset(_Augmented):
    """In-memory uint8 ``(N, H, W, C)`` images with int64 labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: T.Transform, train: bool,
                 num_classes: int, seed: int = 0) -> None:
        super().__init__(transform, train, seed)
        if len(images) != len(labels):
            raise UsageError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.targets = check_labels(labels, num_classes, "dataset")
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index], self._gen(index)), int(self.targets[index])


class FolderDataset(_Augmented):
    """An ImageFolder tree (``class/xxx.jpg``). An unreadable image is an error naming the file, or —
    with ``skip_bad=True`` — is replaced by the next readable image and reported once by ``warnings``."""

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], transform: T.Transform, train: bool,
                 seed: int = 0, skip_bad: bool = False) -> None:
        super().__init__(transform, train, seed)
        self.samples = samples
        self.classes = classes
        self.targets = np.asarray([t for _, t in samples], dtype=np.int64)
        self.num_classes = len(classes)
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for k in range(len(self.samples)):
            path, target = self.samples[(index + k) % len(self.samples)]
            try:
                img = read_image(path)
            except UsageError:
                if not self.skip_bad:
                    raise
                warnings.warn(f"skipping unreadable image {path}", RuntimeWarning, stacklevel=2)
                continue
            return self.transform(img, self._gen(index)), target
        raise UsageError("no readable image in the dataset")


def read_image(path: str) -> Image.Image:
    """Open and decode an image as RGB; a damaged file is a ``ValueError`` naming it and the way out."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise UsageError(
            f"cannot read image {path} ({type(e).__name__}: {e}); remove or replace it, "
            "or pass --set data.skip_bad_images=true to skip unreadable images"
        ) from None


# -- sources ----------------------------------------------------------------------------------------
def default_root(name: str) -> Path:
    """Where a dataset lives without ``--data-root``: ``$SDNET_DATA`` or ``~/.cache/sdnet/data``, plus ``name``
    for ImageNet."""
    base = Path(os.environ.get("SDNET_DATA", Path.home() / ".cache" / "sdnet" / "data"))
    return base / name if name == "imagenet" else base


def _root(name: str, root: str | Path | None) -> Path:
    return Path(root) if root is not None else default_root(name)


def imagenet_samples(split: str, root: str | Path | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """``(samples, classes)`` of ``root/train`` or ``root/val`` (ImageFolder layout; ``test`` reads ``val``)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    check_root(root, "train/ and val/ ImageFolder trees")
    root = _root("imagenet", root)
    folder = root / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise UsageError(f"ImageFolder split {folder} not found: --dataset imagenet needs --data-root DIR "
                         "with DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG")
    # class indices come from train/ (so val/ with a missing class keeps the same label numbers)
    ref = root / "train" if (root / "train").is_dir() else folder
    classes = sorted(e.name for e in os.scandir(ref) if e.is_dir())
    if not classes:
        raise UsageError(f"{folder} has no class folders (expected {folder}/<class>/<image>)")
    index = {c: i for i, c in enumerate(classes)}
    extra = sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name not in index)
    if extra:
        raise UsageError(f"{folder} has class folders that train/ lacks: {', '.join(extra[:3])}")
    samples = make_dataset(str(folder), index, extensions=IMG_EXTENSIONS, allow_empty=True)
    if not samples:
        raise UsageError(f"{folder} holds no images with extensions {', '.join(IMG_EXTENSIONS)}")
    return samples, classes


def build_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    train_transform: bool = False,
    download: bool = True,
    image_size: int | None = None,
    seed: int = 0,
    skip_bad_images: bool = False,
    in_chans: int = 3,
) -> Dataset:
    """A torch ``Dataset`` of ``(normalised float (3, S, S), int label)`` for ``split`` of ``name``.

    ``train_transform`` turns on the paper's augmentation (seeded per sample by ``(seed, epoch, index)``);
    ``image_size`` defaults to the dataset's (digits 8, CIFAR 32, ImageNet 224); ``in_chans=1`` gives
    one-channel digits (they are grey: the three channels are equal). The result has
    ``targets`` (int64 array) and ``num_classes``.
    """
    info = dataset_info(name)
    _check_split(split)
    size = int(image_size or info.image_size)
    if name == "imagenet":
        samples, classes = imagenet_samples(split, root)
        tf = T.pil_transform(info.mean, info.std, train_transform, size)
        return FolderDataset(samples, classes, tf, train_transform, seed, skip_bad_images)
    if in_chans not in (1, 3) or (in_chans == 1 and name != "digits"):
        raise UsageError(f"data.in_chans={in_chans} is not available for {name} (digits: 1 or 3; others: 3)")
    if name == "digits":
        images, labels = load_digits(split, size)
        mean, std = info.mean, info.std
        if in_chans == 1:
            images, mean, std = np.ascontiguousarray(images[..., :1]), mean[:1], std[:1]
        tf = T.array_transform(mean, std, train_transform, size, padding=max(1, size // 8), flip=False)
    else:
        images, labels = load_cifar(name, split, _root(name, root), download)
        if size != 32:
            raise UsageError(f"{name} images are 32x32; data.image_size={size} is not supported for it")
        tf = T.array_transform(info.mean, info.std, train_transform, size, padding=4, flip=True)
    return ArrayDataset(images, labels, tf, train_transform, info.num_classes, seed)


def load_raw_images(
    name: str, split: str = "test", root: str | Path | None = None, image_size: int | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Clean images before normalisation: uint8 ``(N, H, W, 3)`` and int64 ``(N,)``.

    ImageNet images are resized (short side ``S·256/224``) and centre-cropped to ``S`` (default 224) — all
    of them in memory, so use it on small folders.
    """
    info = dataset_info(name)
    _check_split(split)
    if name == "digits":
        return load_digits(split, int(image_size or info.image_size))
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, split, _root(name, root), download)
    size = int(image_size or info.image_size)
    samples, _ = imagenet_samples(split, root)
    resize = int(round(size * 256 / 224))
    images = np.stack([np.asarray(T.resize_center_crop(read_image(p), size, resize)) for p, _ in samples])
    return images, np.asarray([t for _, t in samples], dtype=np.int64)

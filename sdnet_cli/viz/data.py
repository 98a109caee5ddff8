"""A small, class-balanced batch of test images for a model, normalised the way the model was trained.

The dataset defaults to the one recorded in the model's ``config.json``; mean/std come from the config
(else from the dataset's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..data.channels import in_model_channels
from ..models.files import ModelConfig
from ..errors import UsageError


@dataclass
class VizBatch:
    """Normalised images ``x`` ``(N, C, H, W)``, labels ``(N,)``, and the normalisation used."""

    x: Tensor
    labels: Tensor
    mean: list[float] | None
    std: list[float] | None
    dataset: str


def _raw_images(name: str, root: str | None, size: int | None
                ) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """uint8 NHWC test images (``size``×``size`` when given), labels, and the dataset's default mean/std."""
    from ..data import datasets

    info = datasets.dataset_info(name)
    images, labels = datasets.load_raw_images(name, split="test", root=root, image_size=size)
    return np.asarray(images), np.asarray(labels), list(info.mean), list(info.std)


def balanced_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices that cycle through the classes in order (first image of class 0, 1, …, then the second …)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    per_class = [np.flatnonzero(labels == c) for c in classes]
    out: list[int] = []
    rank = 0
    while len(out) < min(n, len(labels)):
        for idx in per_class:
            if rank < len(idx) and len(out) < n:
                out.append(int(idx[rank]))
        rank += 1
    return np.array(out, dtype=np.int64)


def load_batch(config: ModelConfig, dataset: str | None = None, num_images: int = 8,
               data_root: str | None = None, image_size: int | None = None) -> VizBatch:
    """``num_images`` class-balanced test images of ``dataset`` (default: the model's), normalised.

    ``image_size`` defaults to the size the model was trained at (``metrics.image_size`` in its config)
    when the dataset is the model's, else to the dataset's own size.
    """
    if num_images < 1:
        raise UsageError(f"--num-images must be >= 1, got {num_images}")
    name = dataset or config.dataset
    if not name:
        raise UsageError("the model's config.json names no dataset; pass --dataset NAME")
    same_data = dataset is None or dataset == config.dataset
    if image_size is not None and image_size < 1:
        raise UsageError(f"--image-size must be >= 1, got {image_size}")
    recorded = config.metrics.get("image_size") if same_data else None
    size = int(image_size or recorded) if (image_size or recorded) else None
    if name == "imagenet":  # an image folder: decode only the images shown
        return _folder_batch(name, data_root, num_images, size)
    images, labels, mean, std = _raw_images(name, data_root, size)
    if same_data:
        mean, std = config.mean or mean, config.std or std
    idx = balanced_indices(labels, num_images)
    picked = in_model_channels(np.ascontiguousarray(images[idx]), int(config.model_args.get("in_chans", 3)))
    x = torch.from_numpy(np.ascontiguousarray(picked)).permute(0, 3, 1, 2).float() / 255.0
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        x = (x - m) / s
    return VizBatch(x, torch.from_numpy(np.asarray(labels)[idx]), mean, std, name)


def _folder_batch(name: str, root: str | None, num_images: int, size: int | None) -> VizBatch:
    from ..data import datasets

    info = datasets.dataset_info(name)
    ds = datasets.build_dataset(name, split="test", root=root, image_size=size)
    idx = balanced_indices(np.asarray(ds.targets), num_images)
    items = [ds[int(i)] for i in idx]
    x = torch.stack([t for t, _ in items])
    labels = torch.tensor([int(lab) for _, lab in items], dtype=torch.int64)
    return VizBatch(x, labels, list(info.mean), list(info.std), name)

"""The bundled digits set: 1,797 8×8 handwritten digits (UCI optdigits, CC BY 4.0, as shipped by scikit-learn).

Stored as ``digits.npz`` (``images`` uint8 in 0…16, ``labels``). Split fixed once and for all: a seeded
permutation, 1,437 train / 360 test images. Images are upsampled (bilinear) to ``image_size`` and returned
as uint8 RGB ``(N, H, W, 3)`` in 0…255, the same form as CIFAR, so every transform and corruption applies.
"""

from __future__ import annotations

import numbers
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from ..errors import UsageError

NUM_TRAIN = 1437
SPLIT_SEED = 0
DEFAULT_IMAGE_SIZE = 16


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f:
        data = np.load(f)
        return data["images"], data["labels"].astype(np.int64)


def load_digits(split: str = "train", image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: uint8 ``(N, image_size, image_size, 3)`` and int64 ``(N,)`` for ``train`` or ``test``."""
    if split not in ("train", "test"):
        raise UsageError(f"digits split must be 'train' or 'test', got {split!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) or image_size < 1:
        raise UsageError(f"digits image size must be an integer >= 1, got {image_size!r}")
    image_size = int(image_size)
    images, labels = _raw()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    idx = order[:NUM_TRAIN] if split == "train" else order[NUM_TRAIN:]
    x = torch.from_numpy(images[idx].astype(np.float32) * (255.0 / 16.0))[:, None]
    if image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1)
    return np.ascontiguousarray(x.numpy()), labels[idx]

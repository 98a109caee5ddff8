"""Per-sample image transforms driven by an explicit ``torch.Generator``.

Every random choice draws from the generator passed in, never from the global RNG, so a sample's
augmentation is a pure function of ``(seed, epoch, index)`` (see :func:`sample_generator`). That makes
training reproducible with any number of DataLoader workers and lets a resumed run replay the rest of an
epoch exactly.

Recipes (the paper's):

- CIFAR: random crop 32 with zero padding 4 + horizontal flip; normalise.
- digits: random crop with padding ``size // 8`` (no flip: digits are not mirror-symmetric); normalise.
- ImageNet: RandomResizedCrop 224 (scale 0.08–1, ratio 3/4–4/3) + flip; eval Resize 256 + CenterCrop 224.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .checks import check_stats

# (image, generator or None) -> normalised float (C, H, W)
Transform = Callable[[object, "torch.Generator | None"], Tensor]

def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU generator seeded by a hash of ``(seed, epoch, index)`` (distinct for every triple in practice)."""
    h = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(h[0] ^ (h[1] >> np.uint64(1))) & 0x7FFF_FFFF_FFFF_FFFF)


def to_float_chw(img: np.ndarray | Tensor | Image.Image) -> Tensor:
    """uint8 ``(H, W, C)`` array / PIL image → float ``(C, H, W)`` in ``[0, 1]``."""
    if isinstance(img, Image.Image):
        img = np.array(img.convert("RGB"))
    t = torch.as_tensor(np.ascontiguousarray(img)) if isinstance(img, np.ndarray) else img
    if t.dim() == 2:
        t = t[:, :, None]
    return t.permute(2, 0, 1).float().div_(255.0)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(x − mean) / std`` per channel; ``x`` ``(C, H, W)``."""
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


def random_crop(x: Tensor, size: int, padding: int, g: torch.Generator) -> Tensor:
    """Zero-pad ``x`` ``(C, H, W)`` by ``padding`` and cut a random ``size × size`` window."""
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    h, w = x.shape[-2:]
    i = int(torch.randint(0, h - size + 1, (1,), generator=g))
    j = int(torch.randint(0, w - size + 1, (1,), generator=g))
    return x[:, i:i + size, j:j + size]


def random_hflip(x: Tensor, g: torch.Generator) -> Tensor:
    """Mirror ``x`` left-right with probability 1/2."""
    return x.flip(-1) if float(torch.rand((), generator=g)) < 0.5 else x


def resized_crop_box(width: int, height: int, g: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
                     ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box ``(left, top, w, h)``: 10 tries at random area/aspect, else a centre crop."""
    area = width * height
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g)))
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * float(torch.rand((), generator=g)))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def resize_center_crop(img: Image.Image, size: int, resize: int) -> Image.Image:
    """Resize the short side to ``resize`` (bilinear), then cut the central ``size × size`` square."""
    w, h = img.size
    s = resize / min(w, h)
    nw, nh = max(size, int(round(w * s))), max(size, int(round(h * s)))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def array_transform(mean: Sequence[float], std: Sequence[float], train: bool, size: int, padding: int,
                    flip: bool) -> Transform:
    """Transform for uint8 ``(H, W, C)`` arrays (digits, CIFAR): [crop + flip when ``train``] + normalise.

    ``mean``/``std`` are checked here, once (finite, ``std > 0``: a ``UsageError`` otherwise)."""
    check_stats(mean, std)

    def apply(img: object, g: torch.Generator | None) -> Tensor:
        x = to_float_chw(img)  # type: ignore[arg-type]
        if train:
            assert g is not None, "a training transform needs a generator"
            x = random_crop(x, size, padding, g)
            if flip:
                x = random_hflip(x, g)
        return normalize(x, mean, std)

    return apply


def pil_transform(mean: Sequence[float], std: Sequence[float], train: bool, size: int) -> Transform:
    """Transform for PIL images (ImageNet): RandomResizedCrop + flip, or Resize(size·8/7) + CenterCrop
    (``mean``/``std`` checked as in :func:`array_transform`)."""
    check_stats(mean, std)
    resize = int(round(size * 256 / 224))

    def apply(img: object, g: torch.Generator | None) -> Tensor:
        assert isinstance(img, Image.Image)
        img = img.convert("RGB")
        if train:
            assert g is not None, "a training transform needs a generator"
            left, top, w, h = resized_crop_box(img.width, img.height, g)
            img = img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
            x = random_hflip(to_float_chw(img), g)
        else:
            x = to_float_chw(resize_center_crop(img, size, resize))
        return normalize(x, mean, std)

    return apply

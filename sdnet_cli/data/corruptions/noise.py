"""Noise corruptions (CIFAR-10-C parameters) and the SDNet paper's harsher noise levels.

Each function maps uint8 images ``(N, H, W, 3)`` and a parameter to uint8 of the same shape, drawing
from ``rng`` (a :class:`numpy.random.Generator`). Pixels ``x`` are in ``[0, 1]``:

- Gaussian: ``x + N(0, σ²)``;  shot: ``Poisson(x·c) / c``;  speckle: ``x + x·N(0, σ²)``;
- impulse (salt and pepper): each value independently replaced with probability ``amount``, by 1 or 0
  with equal chance (what ``skimage.util.random_noise(mode='s&p')`` does).
"""

from __future__ import annotations

import numpy as np

from ._util import to_float, to_uint8
from ...errors import UsageError

# severity 1…5 (CIFAR-10-C, make_cifar_c.py)
GAUSSIAN = (0.04, 0.06, 0.08, 0.09, 0.10)
SHOT = (500, 250, 100, 75, 50)
IMPULSE = (0.01, 0.02, 0.03, 0.05, 0.07)
SPECKLE = (0.06, 0.10, 0.12, 0.16, 0.20)

# the SDNet paper's protocol: level 1…K, generated as the official robust_inference.py does (np.arange, so
# e.g. impulse has 10 levels and its last is 0.30000000000000004, Gaussian's 0.19999999999999998)
SDNET_LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": tuple(float(v) for v in np.arange(0.02, 0.21, 0.02)),  # 0.02 … 0.20, 10 levels
    "shot_noise": tuple(float(v) for v in np.arange(60, 3, -6)),             # 60 … 6, 10 levels
    "speckle_noise": tuple(float(v) for v in np.arange(0.1, 0.7, 0.1)),      # 0.1 … 0.6, 6 levels
    "impulse_noise": tuple(float(v) for v in np.arange(0.03, 0.3, 0.03)),    # 0.03 … 0.30, 10 levels
}


def gaussian_noise_param(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(x + N(0, σ²), 0, 1)``."""
    x = to_float(images)
    return to_uint8(x + rng.normal(0.0, sigma, size=x.shape).astype(np.float32))


def shot_noise_param(images: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(Poisson(x·c) / c, 0, 1)``: photon noise, relative std ``1/√(x·c)``."""
    x = to_float(images).astype(np.float64)
    return to_uint8(rng.poisson(x * rate) / float(rate))


def impulse_noise_param(images: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: a fraction ``amount`` of values set to 0 or 255 (half each)."""
    out = images.copy()
    hit = rng.random(images.shape) < amount
    salt = rng.random(images.shape) < 0.5
    out[hit & salt] = 255
    out[hit & ~salt] = 0
    return out


def speckle_noise_param(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(x + x·N(0, σ²), 0, 1)``: multiplicative noise."""
    x = to_float(images)
    return to_uint8(x + x * rng.normal(0.0, sigma, size=x.shape).astype(np.float32))


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """CIFAR-C Gaussian noise, σ = .04 … .10."""
    return gaussian_noise_param(images, GAUSSIAN[severity - 1], rng)


def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """CIFAR-C shot noise, c = 500 … 50."""
    return shot_noise_param(images, SHOT[severity - 1], rng)


def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """CIFAR-C impulse noise, amount = .01 … .07."""
    return impulse_noise_param(images, IMPULSE[severity - 1], rng)


def speckle_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """CIFAR-C speckle noise, σ = .06 … .20."""
    return speckle_noise_param(images, SPECKLE[severity - 1], rng)


PARAM_FUNCS = {
    "gaussian_noise": gaussian_noise_param,
    "shot_noise": shot_noise_param,
    "impulse_noise": impulse_noise_param,
    "speckle_noise": speckle_noise_param,
}


def sdnet_noise(images: np.ndarray, name: str, level: int, rng: np.random.Generator) -> np.ndarray:
    """The SDNet paper's noise ``name`` at ``level`` (1-based index into :data:`SDNET_LEVELS`)."""
    levels = SDNET_LEVELS[name]
    if not 1 <= level <= len(levels):
        raise UsageError(f"{name} has levels 1-{len(levels)} in the sdnet-noise protocol, got {level}")
    return PARAM_FUNCS[name](images, levels[level - 1], rng)

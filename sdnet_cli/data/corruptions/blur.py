"""Blur corruptions with the CIFAR-10-C parameters (size-generic; pixels in ``[0, 1]``).

- defocus: correlation with an anti-aliased disk of radius ``r`` (3×3 Gaussian alias blur);
- glass: Gaussian blur σ, then ``iterations`` passes that swap each pixel with a random neighbour
  at offset in ``[−δ, δ−1]`` (bottom-right to top-left, as the original), then blur σ again;
- motion: one-sided Gaussian-weighted line kernel (radius, σ) at a random angle in ``[−45°, 45°]``
  (our kernel-based equivalent of ImageMagick's motion blur, see :func:`._util.motion_blur`);
- zoom: mean of the image and its centre zooms by each factor;
- gaussian_blur: Gaussian blur σ (edge mode ``nearest``).
"""

from __future__ import annotations

import numpy as np

from ._util import clipped_zoom, disk_kernel, filter_channels, gaussian_blur_hw, motion_blur as _motion, to_float, to_uint8

DEFOCUS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))
GLASS = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
MOTION = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))
ZOOM_MAX = (1.06, 1.11, 1.16, 1.21, 1.26)  # factors 1.00, 1.01, … below this bound
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Disk (lens defocus) blur."""
    radius, alias = DEFOCUS[severity - 1]
    return to_uint8(filter_channels(to_float(images), disk_kernel(radius, alias)))


def glass_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, local pixel shuffling, blur (vectorised over the batch: one random offset per image and pixel)."""
    sigma, delta, iterations = GLASS[severity - 1]
    n, h, w, _ = images.shape
    x = to_uint8(gaussian_blur_hw(to_float(images), sigma, batched=True))
    idx = np.arange(n)
    for _ in range(iterations):
        for r in range(h - delta, delta, -1):
            for c in range(w - delta, delta, -1):
                d = rng.integers(-delta, delta, size=(n, 2))
                r2 = np.clip(r + d[:, 1], 0, h - 1)
                c2 = np.clip(c + d[:, 0], 0, w - 1)
                a, b = x[idx, r, c].copy(), x[idx, r2, c2].copy()
                x[idx, r, c], x[idx, r2, c2] = b, a
    return to_uint8(gaussian_blur_hw(to_float(x), sigma, batched=True))


def motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Motion blur along a random direction per image."""
    radius, sigma = MOTION[severity - 1]
    angles = rng.uniform(-45, 45, size=images.shape[0])
    return to_uint8(_motion(to_float(images), radius, sigma, angles))


def zoom_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """``(x + Σ_f zoom_f(x)) / (K + 1)`` over factors ``f = 1.00, 1.01, …``."""
    factors = np.arange(1.0, ZOOM_MAX[severity - 1], 0.01)
    x = to_float(images)
    out = np.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, f)
    return to_uint8((x + out) / (len(factors) + 1))


def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur σ = .4 … 1."""
    sigma = GAUSSIAN_BLUR[severity - 1]
    return to_uint8(gaussian_blur_hw(to_float(images), sigma, batched=True))

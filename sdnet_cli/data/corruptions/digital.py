"""Digital corruptions with the CIFAR-10-C parameters (size-generic; pixels in ``[0, 1]``).

- brightness: ``V + b`` in HSV;  saturate: ``S·a + b`` in HSV;  contrast: ``(x − mean)·c + mean``
  (mean per image and channel);
- jpeg_compression: PIL JPEG at quality q;  pixelate: BOX resize to ``⌊s·size⌋`` and back;
- elastic_transform: a random affine warp of three anchor points by up to ``c₂·size`` pixels
  (border reflect-101), then a smooth displacement field ``c₀·size · G_{c₁·size} * U(−1, 1)``,
  bilinear sampling (the CIFAR parameters are fractions of the 32-pixel side, rescaled to the image).
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from ._util import per_image, to_uint8

BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
SATURATE = ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2))
JPEG = (80, 65, 58, 50, 40)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)
ELASTIC = ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))


def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Raise the HSV value by b = .05 … .3."""
    hsv = rgb_to_hsv(images / 255.0)  # float64, as the reference
    hsv[..., 2] = np.clip(hsv[..., 2] + BRIGHTNESS[severity - 1], 0, 1)
    return to_uint8(hsv_to_rgb(hsv))


def saturate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Scale and shift the HSV saturation."""
    a, b = SATURATE[severity - 1]
    hsv = rgb_to_hsv(images / 255.0)  # float64, as the reference
    hsv[..., 1] = np.clip(hsv[..., 1] * a + b, 0, 1)
    return to_uint8(hsv_to_rgb(hsv))


def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shrink towards the per-image, per-channel mean by c = .75 … .15."""
    x = images / 255.0
    mean = x.mean(axis=(1, 2), keepdims=True)
    return to_uint8((x - mean) * CONTRAST[severity - 1] + mean)


def jpeg_compression(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG round trip at quality 80 … 40."""
    out = np.empty_like(images)
    for n, im in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, "JPEG", quality=JPEG[severity - 1])
        buf.seek(0)
        out[n] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """BOX down to a fraction .95 … .65 of the size, BOX back up."""
    out = np.empty_like(images)
    s = PIXELATE[severity - 1]
    for n, im in enumerate(images):
        h, w = im.shape[:2]
        small = Image.fromarray(im).resize((max(1, int(w * s)), max(1, int(h * s))), Image.BOX)
        out[n] = np.asarray(small.resize((w, h), Image.BOX))
    return out


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 matrix ``M`` with ``M·[x, y, 1]ᵀ = dst`` for three (x, y) point pairs."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def _smooth_field(g: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """``G_σ * U(−1, 1)`` (reflect border, 3σ truncation); the raw field when ``σ = 0``."""
    u = g.uniform(-1, 1, size=shape)
    return ndimage.gaussian_filter(u, sigma, mode="reflect", truncate=3.0) if sigma > 0 else u


def elastic_transform(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Random affine + smooth elastic displacement."""
    c = ELASTIC[severity - 1]

    def one(x: np.ndarray, g: np.random.Generator) -> np.ndarray:
        h, w, ch = x.shape
        alpha, sigma, shift = c[0] * h, c[1] * h, c[2] * h
        center = np.array([w, h], dtype=np.float64) // 2
        size = min(h, w) // 3
        src = np.array([center + size, [center[0] + size, center[1] - size], center - size])
        dst = src + g.uniform(-shift, shift, size=src.shape)
        m = _affine_from_points(src, dst)  # maps (x, y) of the source to the warped image
        inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
        # ndimage works in (row, col): output (r, c) samples input at inv·(c, r)
        mat = np.array([[inv[1, 1], inv[1, 0]], [inv[0, 1], inv[0, 0]]])
        off = np.array([inv[1, 2], inv[0, 2]])
        warped = np.stack([ndimage.affine_transform(x[..., k], mat, off, order=1, mode="mirror") for k in range(ch)], -1)
        dx = _smooth_field(g, (h, w), sigma) * alpha
        dy = _smooth_field(g, (h, w), sigma) * alpha
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        coords = [rows + dy, cols + dx]
        return np.stack([ndimage.map_coordinates(warped[..., k], coords, order=1, mode="reflect") for k in range(ch)], -1)

    return per_image(images, one, rng)

"""Shared helpers for the corruptions: pixel conversions, filters, zoom, plasma fractal, motion kernel.

All helpers work on float images in ``[0, 1]`` shaped ``(H, W, C)`` (one image) unless said otherwise,
so every corruption is size-generic (digits 16×16, CIFAR 32×32, …).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 ``(…, H, W, 3)`` → float32 in ``[0, 1]``."""
    return images.astype(np.float32) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float in ``[0, 1]`` → uint8 by ``floor(clip(x, 0, 1)·255)`` (the ``np.uint8`` cast of the original script)."""
    return (np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def gaussian_blur_hw(x: np.ndarray, sigma: float, batched: bool = False) -> np.ndarray:
    """Gaussian blur over the spatial axes of ``(H, W)``, ``(H, W, C)`` or, with ``batched``, ``(N, H, W, C)``.

    Edge mode ``nearest``, 4σ truncation (``skimage.filters.gaussian``'s defaults).
    """
    sig = ((0.0,) if batched else ()) + (sigma, sigma) + (0.0,) * (x.ndim - 2 - int(batched))
    return ndimage.gaussian_filter(x, sig, mode="nearest", truncate=4.0)


def gaussian_kernel_3x3(sigma: float) -> np.ndarray:
    """Normalised 3×3 Gaussian kernel (what ``GaussianBlur(ksize=(3, 3), sigma)`` uses)."""
    g = np.exp(-(np.arange(-1, 2) ** 2) / (2.0 * sigma * sigma))
    g /= g.sum()
    return np.outer(g, g)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Anti-aliased disk: indicator of ``x² + y² ≤ r²`` on a 17×17 grid, normalised, then a 3×3 Gaussian blur."""
    half = 8 if radius <= 8 else int(np.ceil(radius))
    coords = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(coords, coords)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    return ndimage.convolve(disk, gaussian_kernel_3x3(alias_blur), mode="mirror")


def filter_channels(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D correlation of each channel of ``(…, H, W, C)`` with ``kernel`` (border: reflect-101)."""
    k = kernel.reshape((1,) * (x.ndim - 3) + kernel.shape + (1,))
    return ndimage.correlate(x, k, mode="mirror")


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of ``(…, H, W, C)`` by ``factor`` ≥ 1 (bilinear) and crop back to ``(H, W)``."""
    h, w = x.shape[-3], x.shape[-2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    lead = (1.0,) * (x.ndim - 3)
    zoomed = ndimage.zoom(x[..., top:top + ch, left:left + cw, :], lead + (factor, factor, 1.0), order=1)
    th, tw = (zoomed.shape[-3] - h) // 2, (zoomed.shape[-2] - w) // 2
    return zoomed[..., th:th + h, tw:tw + w, :]


def plasma_fractal(size: int, wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map ``(n, n)`` in ``[0, 1]`` with ``n`` the power of two ≥ ``size``."""
    n = 1 << max(1, int(np.ceil(np.log2(size))))
    a = np.zeros((n, n), dtype=np.float64)
    step, wibble = n, 100.0

    def wibbled_mean(arr: np.ndarray) -> np.ndarray:
        return arr / 4 + wibble * rng.uniform(-wibble, wibble, arr.shape)

    while step >= 2:
        half = step // 2
        corners = a[0:n:step, 0:n:step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq = sq + np.roll(sq, -1, axis=1)
        a[half:n:step, half:n:step] = wibbled_mean(sq)
        dr = a[half:n:step, half:n:step]
        ul = a[0:n:step, 0:n:step]
        a[0:n:step, half:n:step] = wibbled_mean(dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1))
        a[half:n:step, 0:n:step] = wibbled_mean(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0))
        step //= 2
        wibble /= wibble_decay
    a -= a.min()
    return a / a.max()


def motion_blur(x: np.ndarray, radius: float, sigma: float, angle_deg: float | np.ndarray) -> np.ndarray:
    """One-sided motion blur: ``Σᵢ kᵢ · x(p − i·u)`` with ``kᵢ ∝ exp(−i²/2σ²)``, ``i = 0…2⌈r⌉``.

    ``x`` is one image ``(H, W, C)`` with a scalar angle, or a batch ``(N, H, W, C)`` with one angle per
    image. ``u`` is the unit vector at ``angle_deg`` (0° = +x, 90° = +y, rows down), offsets are rounded
    to whole pixels and the border is clamped. Modelled on ImageMagick's ``MotionBlurImage`` that the
    original script calls through Wand: same kernel shape, not bit-identical.
    """
    single = x.ndim == 3
    xb = x[None] if single else x
    n, h, w = xb.shape[:3]
    theta = np.deg2rad(np.broadcast_to(np.asarray(angle_deg, dtype=np.float64), (n,)))
    width = 2 * int(np.ceil(radius)) + 1
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i ** 2) / (2.0 * sigma * sigma))
    k /= k.sum()
    idx = np.arange(n)[:, None, None]
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    out = np.zeros(xb.shape, dtype=np.float64)
    for step, weight in zip(i, k):
        dy = np.round(step * np.sin(theta)).astype(int)[:, None, None]
        dx = np.round(step * np.cos(theta)).astype(int)[:, None, None]
        out += weight * xb[idx, np.clip(rows - dy, 0, h - 1), np.clip(cols - dx, 0, w - 1)]
    out = out.astype(x.dtype)
    return out[0] if single else out


def grayscale(x: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` → ``(H, W, 1)`` luma ``0.299 R + 0.587 G + 0.114 B``."""
    return (x[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=x.dtype))[..., None]


def per_image(images: np.ndarray, fn, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
    """Apply ``fn(image_float_hwc, rng) -> float`` to each uint8 image; returns uint8 of the same shape."""
    out = np.empty_like(images)
    for n in range(images.shape[0]):
        out[n] = to_uint8(fn(to_float(images[n]), rng))
    return out

"""Shared helpers for the corruptions: pixel conversions, filters, zoom, plasma fractal, motion kernel.

All helpers work on float images in ``[0, 1]`` shaped ``(H, W, C)`` (one image) unless said otherwise,
so every corruption is size-generic (digits 16×16, CIFAR 32×32, …).
"""

from __future__ import annotations

import cv2
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


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Anti-aliased disk as the reference makes it: indicator of ``x² + y² ≤ r²`` on a 17×17 grid (float32),
    normalised, then ``cv2.GaussianBlur`` with a 3×3 kernel of σ ``alias_blur`` (border reflect-101)."""
    half = 8 if radius <= 8 else int(np.ceil(radius))
    coords = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(coords, coords)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=alias_blur)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of ``(…, H, W, C)`` by ``factor`` ≥ 1 (bilinear) and crop back to ``(H, W)``."""
    h, w = x.shape[-3], x.shape[-2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    lead = (1.0,) * (x.ndim - 3)
    zoomed = ndimage.zoom(x[..., top:top + ch, left:left + cw, :], lead + (factor, factor, 1.0), order=1)
    th, tw = (zoomed.shape[-3] - h) // 2, (zoomed.shape[-2] - w) // 2
    return zoomed[..., th:th + h, tw:tw + w, :]


def zoom_axis_matrix(size: int, factor: float) -> np.ndarray:
    """``(size, size)`` float64 matrix of :func:`clipped_zoom` along one axis: crop the centre ``⌈size/f⌉``,
    zoom it as ``ndimage.zoom(order=1)`` does (output ``round(c·f)`` samples at ``j·(c−1)/(m−1)``, linear
    between neighbours), keep the centre ``size``. ``clipped_zoom(x) = A_h · x · A_wᵀ`` per image and channel."""
    c = int(np.ceil(size / factor))
    top = (size - c) // 2
    m = int(round(c * factor))
    pos = np.arange(m) * ((c - 1) / (m - 1)) if m > 1 else np.zeros(1)
    lo = np.minimum(np.floor(pos).astype(int), c - 1)
    frac = pos - lo
    full = np.zeros((m, size))
    full[np.arange(m), top + lo] += 1.0 - frac
    hi = lo + 1 < c
    full[np.arange(m)[hi], top + lo[hi] + 1] += frac[hi]
    trim = (m - size) // 2
    return full[trim:trim + size]


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


def motion_offsets(width: int, angle_deg: float) -> np.ndarray:
    """ImageMagick's motion-blur offsets ``(dx, dy)`` of taps ``i = 0…width−1`` at ``angle_deg`` (``(width, 2)`` int).

    ``dx = ⌈i·cos a − ½⌉``, ``dy = ⌈i·sin a − ½⌉`` (rows down), computed as ``MotionBlurImage`` does:
    ``i·(width·cos a) / hypot(width·sin a, width·cos a)``.
    """
    a = np.deg2rad(angle_deg)
    px, py = width * np.sin(a), width * np.cos(a)
    norm = np.hypot(px, py)
    i = np.arange(width, dtype=np.float64)
    return np.stack([np.ceil(i * py / norm - 0.5), np.ceil(i * px / norm - 0.5)], -1).astype(np.int64)


def motion_kernel(radius: float, sigma: float) -> np.ndarray:
    """ImageMagick's one-sided motion kernel: ``kᵢ ∝ exp(−i²/2σ²)``, ``i = 0…2⌈r⌉`` (width ``2⌈r⌉ + 1``), sum 1."""
    width = int(2.0 * np.ceil(radius) + 1.0)
    sig = max(abs(sigma), 1e-12)
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i * i) / (2.0 * sig * sig)) / (np.sqrt(2.0 * np.pi) * sig)
    return k / k.sum()


def motion_blur(images: np.ndarray, radius: float, sigma: float, angle_deg: float | np.ndarray) -> np.ndarray:
    """ImageMagick's ``MotionBlurImage`` (what the reference calls through Wand) on uint8 ``(N, H, W, C)``.

    ``out(p) = Σᵢ kᵢ · x(p + oᵢ)``: it reads *ahead* along the angle (0° = +x, 90° = +y, rows down) with
    the offsets of :func:`motion_offsets`, the border clamped (ImageMagick's edge virtual pixels), one angle
    per image. The sum is taken on the 16-bit quantum (``257·x``) and rounded to it, then *truncated* to 8 bits
    (``q // 257``), as ImageMagick Q16 does when it writes the PNG the reference reads back (matched on
    ImageMagick 6.9.11 Q16: no pixel differs).
    """
    n, h, w = images.shape[:3]
    k = motion_kernel(radius, sigma)
    angles = np.broadcast_to(np.asarray(angle_deg, dtype=np.float64), (n,))
    offs = np.stack([motion_offsets(len(k), a) for a in angles], 1)  # (width, n, 2)
    x = images.astype(np.float64) * 257.0
    idx = np.arange(n)[:, None, None]
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    acc = np.zeros(images.shape, dtype=np.float64)
    for weight, off in zip(k, offs):
        dx, dy = off[:, 0, None, None], off[:, 1, None, None]
        acc += weight * x[idx, np.clip(rows + dy, 0, h - 1), np.clip(cols + dx, 0, w - 1)]
    q = np.floor(np.clip(acc, 0.0, 65535.0) + 0.5).astype(np.int64)
    return (q // 257).astype(np.uint8)


def per_image(images: np.ndarray, fn, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
    """Apply ``fn(image_float_hwc, rng) -> float`` to each uint8 image; returns uint8 of the same shape."""
    out = np.empty_like(images)
    for n in range(images.shape[0]):
        out[n] = to_uint8(fn(to_float(images[n]), rng))
    return out

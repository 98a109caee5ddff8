"""Blur corruptions with the CIFAR-10-C parameters (size-generic; pixels in ``[0, 1]``).

- defocus: correlation with an anti-aliased disk of radius ``r`` (OpenCV's 3×3 Gaussian alias blur and
  ``filter2D``, float64 pixels, as the reference);
- glass: Gaussian blur σ, then ``iterations`` passes in which each pixel copies a random neighbour at
  offset in ``[−δ, δ−1]`` (what the reference's view-based "swap" does, see :func:`glass_copy`), blur σ;
- motion: ImageMagick's motion blur (radius, σ) at a random angle in ``[−45°, 45°]``, reading ahead along
  the angle (see :func:`._util.motion_blur`);
- zoom: mean of the image and its centre zooms by each factor;
- gaussian_blur: Gaussian blur σ (edge mode ``nearest``).
"""

from __future__ import annotations

import numpy as np

import cv2

from ._util import disk_kernel, zoom_axis_matrix, gaussian_blur_hw, motion_blur as _motion, to_float, to_uint8

DEFOCUS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))
GLASS = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
MOTION = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))
ZOOM_MAX = (1.06, 1.11, 1.16, 1.21, 1.26)  # factors 1.00, 1.01, … below this bound
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Disk (lens defocus) blur."""
    radius, alias = DEFOCUS[severity - 1]
    kernel = disk_kernel(radius, alias)
    return to_uint8(np.stack([cv2.filter2D(im / 255.0, -1, kernel) for im in images]).reshape(images.shape))


def glass_positions(h: int, w: int, delta: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels the reference visits, in its order: rows ``h−δ … δ+1``, and in each row columns ``w−δ … δ+1``."""
    rows, cols = np.meshgrid(np.arange(h - delta, delta, -1), np.arange(w - delta, delta, -1), indexing="ij")
    return rows.ravel(), cols.ravel()


def glass_copy(x: np.ndarray, offsets: np.ndarray, delta: int) -> np.ndarray:
    """One pass of the reference's pixel "swap" on uint8 ``(N, H, W, C)``; ``offsets`` ``(N, P, 2)`` = (dx, dy).

    The reference writes ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on an RGB array, where both sides are
    views: the first assignment copies the neighbour into ``(h, w)`` and the second writes that same value
    back, so each visited pixel *copies* its neighbour ``(h + dy, w + dx)`` and the neighbour is unchanged.
    With ``δ = 1`` the offsets are in ``{−1, 0}``, so every read is of a pixel not yet visited (visits run
    from the bottom-right) and the pass is one gather from the unchanged image; other ``δ`` run sequentially.
    """
    n, h, w = x.shape[:3]
    rows, cols = glass_positions(h, w, delta)
    src_r, src_c = rows[None] + offsets[..., 1], cols[None] + offsets[..., 0]
    out = x.copy()
    idx = np.arange(n)[:, None]
    if delta == 1:
        out[idx, rows[None], cols[None]] = x[idx, src_r, src_c]
        return out
    for p in range(len(rows)):
        out[idx[:, 0], rows[p], cols[p]] = out[idx[:, 0], src_r[:, p], src_c[:, p]]
    return out


def glass_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur (float64, cast to uint8), ``iterations`` passes of :func:`glass_copy`, blur again."""
    sigma, delta, iterations = GLASS[severity - 1]
    n, h, w, _ = images.shape
    x = (gaussian_blur_hw(images / 255.0, sigma, batched=True) * 255).astype(np.uint8)
    npos = len(glass_positions(h, w, delta)[0])
    offsets = rng.integers(-delta, delta, size=(n, iterations, npos, 2))
    for it in range(iterations):
        x = glass_copy(x, offsets[:, it], delta)
    return to_uint8(gaussian_blur_hw(x / 255.0, sigma, batched=True))


def motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick's motion blur (:func:`._util.motion_blur`) at a random angle in ``[−45°, 45°]`` per image."""
    radius, sigma = MOTION[severity - 1]
    angles = rng.uniform(-45, 45, size=images.shape[0])
    return _motion(images, radius, sigma, angles)


def zoom_blur(images: np.ndarray, severity: int, rng: np.random.Generator, chunk: int = 256) -> np.ndarray:
    """``(x + Σ_f zoom_f(x)) / (K + 1)`` over factors ``f = 1.00, 1.01, …`` (float32, as the reference).

    Each ``zoom_f`` is :func:`._util.clipped_zoom` done as two matrix products (:func:`._util.zoom_axis_matrix`,
    float64, then cast to float32 like ``ndimage.zoom``'s float32 output); the zooms are added in order in
    float32 as the reference does. ``chunk`` images at a time bound the memory.
    """
    factors = np.arange(1.0, ZOOM_MAX[severity - 1], 0.01)
    n, h, w, c = images.shape
    rows = np.concatenate([zoom_axis_matrix(h, f) for f in factors])   # (K·h, h)
    cols_t = [zoom_axis_matrix(w, f).T for f in factors]                # K × (w, w)
    out = np.empty_like(images)
    for start in range(0, n, chunk):
        x = to_float(images[start:start + chunk])                       # (b, h, w, c) float32
        b = len(x)
        t = (rows @ x.transpose(1, 0, 3, 2).reshape(h, -1).astype(np.float64)).reshape(len(factors), h * b * c, w)
        acc = np.zeros((h * b * c, w), dtype=np.float32)                 # rows (y, image, channel), columns x
        for k, ct in enumerate(cols_t):
            acc += (t[k] @ ct).astype(np.float32)
        acc = acc.reshape(h, b, c, w).transpose(1, 0, 3, 2)
        out[start:start + chunk] = to_uint8((x + acc) / (len(factors) + 1))
    return out


def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur σ = .4 … 1."""
    sigma = GAUSSIAN_BLUR[severity - 1]
    return to_uint8(gaussian_blur_hw(images / 255.0, sigma, batched=True))

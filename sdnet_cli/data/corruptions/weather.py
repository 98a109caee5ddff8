"""Weather corruptions with the CIFAR-10-C parameters (size-generic; pixels in ``[0, 1]``).

- snow: a thresholded, zoomed Gaussian snow layer, motion-blurred at a random angle in ``[−135°, −45°]``
  (our kernel-based equivalent of ImageMagick's motion blur), added with its 180° rotation to a
  brightened image ``c·x + (1−c)·max(x, 1.5·gray(x) + .5)``;
- frost: ``a·x + b·texture`` with a random crop of one of the original frost photographs, downscaled
  0.2×. The textures are not ours to ship: they are read from the ``imagecorruptions`` package when it is
  installed, otherwise :func:`frost` raises :class:`FrostUnavailable` and callers skip frost;
- fog: ``(x + s·plasma) · max(x) / (max(x) + s)`` with a diamond-square plasma fractal;
- spatter: water (severity 1–3) or mud (4–5) drops from a thresholded, blurred Gaussian field; the
  water path's edge map is our own Canny (Sobel, non-maximum suppression, hysteresis 50/150) in place
  of OpenCV's.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from PIL import Image
from scipy import ndimage

from ._util import clipped_zoom, gaussian_blur_hw, grayscale, motion_blur, per_image, plasma_fractal, to_uint8

SNOW = ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))
FROST = ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))
SPATTER = ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
           (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1))
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")  # the 5 the CIFAR script draws


class FrostUnavailable(RuntimeError):
    """The frost textures are not installed (``pip install imagecorruptions`` provides them)."""


def snow(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Falling snow."""
    c = SNOW[severity - 1]

    def one(x: np.ndarray, g: np.random.Generator) -> np.ndarray:
        layer = g.normal(c[0], c[1], size=x.shape[:2])[..., None]
        layer = clipped_zoom(layer, c[2])
        layer[layer < c[3]] = 0
        layer = to_uint8(layer).astype(np.float32) / 255.0
        layer = motion_blur(layer, c[4], c[5], g.uniform(-135, -45))
        x = c[6] * x + (1 - c[6]) * np.maximum(x, grayscale(x) * 1.5 + 0.5)
        return x + layer + np.rot90(layer, k=2)

    return per_image(images, one, rng)


@lru_cache(maxsize=None)
def _frost_textures() -> tuple[np.ndarray, ...]:
    try:
        root = resources.files("imagecorruptions").joinpath("frost")
    except ModuleNotFoundError:
        raise FrostUnavailable("frost needs the original frost textures: pip install imagecorruptions") from None
    textures = []
    for name in FROST_FILES:
        with root.joinpath(name).open("rb") as f:
            im = Image.open(f).convert("RGB")
            im = im.resize((max(1, round(im.width * 0.2)), max(1, round(im.height * 0.2))), Image.BILINEAR)
            textures.append(np.asarray(im, dtype=np.float32) / 255.0)
    return tuple(textures)


def frost_available() -> bool:
    """Whether the original frost textures can be loaded."""
    try:
        _frost_textures()
        return True
    except (FrostUnavailable, FileNotFoundError, OSError):
        return False


def frost(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Frost on the lens (needs the original textures, see :class:`FrostUnavailable`)."""
    a, b = FROST[severity - 1]
    textures = _frost_textures()

    def one(x: np.ndarray, g: np.random.Generator) -> np.ndarray:
        t = textures[int(g.integers(len(textures)))]
        h, w = x.shape[:2]
        r0, c0 = int(g.integers(0, t.shape[0] - h)), int(g.integers(0, t.shape[1] - w))
        return a * x + b * t[r0:r0 + h, c0:c0 + w]

    return per_image(images, one, rng)


def fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Fog from a plasma fractal."""
    strength, decay = FOG[severity - 1]

    def one(x: np.ndarray, g: np.random.Generator) -> np.ndarray:
        h, w = x.shape[:2]
        top = x.max()
        x = x + strength * plasma_fractal(max(h, w), decay, g)[:h, :w, None].astype(np.float32)
        return x * top / (top + strength)

    return per_image(images, one, rng)


def _canny(img: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean edge map: Sobel L1 magnitude, non-maximum suppression over 4 directions, hysteresis."""
    f = img.astype(np.float64)
    gx, gy = ndimage.sobel(f, axis=1, mode="mirror"), ndimage.sobel(f, axis=0, mode="mirror")
    mag = np.abs(gx) + np.abs(gy)
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    padded = np.pad(mag, 1)
    h, w = mag.shape
    keep = np.zeros_like(mag, dtype=bool)
    for lo, hi, (dr, dc) in ((0, 22.5, (0, 1)), (157.5, 180.1, (0, 1)), (22.5, 67.5, (1, 1)),
                             (67.5, 112.5, (1, 0)), (112.5, 157.5, (1, -1))):
        sel = (angle >= lo) & (angle < hi)
        n1 = padded[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
        n2 = padded[1 - dr:1 - dr + h, 1 - dc:1 - dc + w]
        keep |= sel & (mag >= n1) & (mag >= n2)
    mag = np.where(keep, mag, 0.0)
    weak = mag > low
    labels, count = ndimage.label(weak, structure=np.ones((3, 3)))
    strong_labels = np.unique(labels[mag > high])
    return np.isin(labels, strong_labels[strong_labels > 0])


def _equalize_hist(img: np.ndarray) -> np.ndarray:
    """Histogram equalisation of a uint8 image: ``lut = round((cdf − cdf_min)·255 / (N − cdf_min))``."""
    hist = np.bincount(img.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    cdf_min = cdf[np.nonzero(hist)[0][0]]
    denom = max(int(cdf[-1] - cdf_min), 1)
    lut = np.clip(np.round((cdf - cdf_min) * 255.0 / denom), 0, 255).astype(np.uint8)
    return lut[img]


def spatter(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Water or mud drops."""
    c = SPATTER[severity - 1]
    ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)

    def one(x: np.ndarray, g: np.random.Generator) -> np.ndarray:
        liquid = gaussian_blur_hw(g.normal(c[0], c[1], size=x.shape[:2]), c[2])
        liquid[liquid < c[3]] = 0
        if c[5] == 0:  # water
            liquid8 = to_uint8(liquid)
            dist = ndimage.distance_transform_edt(~_canny(liquid8, 50, 150))
            dist = np.minimum(dist, 20.0)
            dist = ndimage.uniform_filter(dist, 3, mode="mirror").astype(np.uint8)
            dist = _equalize_hist(dist)
            dist = np.clip(np.round(ndimage.correlate(dist.astype(np.float64), ker, mode="mirror")), 0, 255)
            dist = ndimage.uniform_filter(dist, 3, mode="mirror").astype(np.float32)
            m = liquid8.astype(np.float32) * dist
            top = m.max()
            m = (m / top if top > 0 else m) * c[4]
            color = np.array([175, 238, 238], dtype=np.float32) / 255.0
            return x + m[..., None] * color
        mud = gaussian_blur_hw((liquid > c[3]).astype(np.float32), c[4])
        mud[mud < 0.8] = 0
        color = np.array([63, 42, 20], dtype=np.float32) / 255.0
        return x * (1 - mud[..., None]) + color * mud[..., None]

    return per_image(images, one, rng)

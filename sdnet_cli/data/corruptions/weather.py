"""Weather corruptions with the CIFAR-10-C parameters (size-generic; pixels in ``[0, 1]``).

- snow: a thresholded, zoomed Gaussian snow layer cast to 8 bits, motion-blurred as ImageMagick does
  (reading ahead along a random angle in ``[−135°, −45°]``, result in 8 bits), added with its 180° turn to a
  brightened image ``c·x + (1−c)·max(x, 1.5·gray(x) + .5)``;
- frost: ``a·x + b·texture`` with a random crop of one of the original frost photographs, read and shrunk
  0.2× with OpenCV as the reference does. The textures are not ours to ship: they are read from the files
  of the installed ``imagecorruptions`` distribution (without importing it), otherwise :func:`frost`
  raises :class:`FrostUnavailable` and callers skip frost;
- fog: ``(x + s·plasma) · max(x) / (max(x) + s)`` with a diamond-square plasma fractal;
- spatter: water (severity 1–3) or mud (4–5) drops from a thresholded, blurred Gaussian field; the
  water path uses OpenCV's Canny, distance transform, box blur and histogram equalisation, as the
  reference does.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from ...errors import UsageError
from ._util import clipped_zoom, gaussian_blur_hw, motion_blur, per_image, plasma_fractal, to_uint8

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
    """Falling snow: the layer is cast to 8 bits, motion-blurred by ImageMagick's rule (reading ahead along an
    angle in ``[−135°, −45°]``, result rounded to 8 bits as ImageMagick writes it), added with its 180° turn."""
    c = SNOW[severity - 1]
    n, h, w, _ = images.shape
    layers = np.empty((n, h, w, 1), dtype=np.uint8)
    angles = np.empty(n)
    for i in range(n):
        layer = clipped_zoom(rng.normal(c[0], c[1], size=(h, w))[..., None], c[2])
        layer[layer < c[3]] = 0
        layers[i] = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
        angles[i] = rng.uniform(-135, -45)
    layers = motion_blur(layers, c[4], c[5], angles) / 255.0
    x = images.astype(np.float32) / np.float32(255.0)
    grey = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in x])[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, grey * 1.5 + 0.5)
    return to_uint8(x + layers + np.rot90(layers, k=2, axes=(1, 2)))


def frost_dir() -> Path:
    """The folder of the original frost textures inside the installed ``imagecorruptions`` distribution.

    Found from the distribution's file list (``importlib.metadata``), without importing the package (its
    ``__init__`` needs ``pkg_resources``, which setuptools ≥ 81 no longer ships). Raises
    :class:`FrostUnavailable` saying what is missing.
    """
    try:
        dist = metadata.distribution("imagecorruptions")
    except metadata.PackageNotFoundError:
        raise FrostUnavailable("frost needs the original frost textures, shipped by the imagecorruptions package: "
                               "pip install imagecorruptions (sdnet reads its image files, it does not import it)") \
            from None
    folder = Path(str(dist.locate_file("imagecorruptions/frost")))
    missing = [f for f in FROST_FILES if not (folder / f).is_file()]
    if missing:
        raise FrostUnavailable(f"imagecorruptions is installed but {folder} lacks {', '.join(missing)}; "
                               "reinstall it (pip install --force-reinstall imagecorruptions)")
    return folder


@lru_cache(maxsize=None)
def _frost_textures() -> tuple[np.ndarray, ...]:
    """The 5 textures the CIFAR script draws from, read and shrunk as it does: ``cv2.imread`` (BGR),
    ``cv2.resize(fx=fy=0.2)`` (bilinear), then RGB; uint8 ``(h, w, 3)`` each."""
    folder = frost_dir()
    textures = []
    for name in FROST_FILES:
        raw = np.fromfile(folder / name, dtype=np.uint8)
        bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or min(bgr.shape[:2]) < 200:
            raise FrostUnavailable(f"{folder / name} is not a readable colour texture; reinstall imagecorruptions")
        small = cv2.resize(bgr, (0, 0), fx=0.2, fy=0.2)
        textures.append(np.ascontiguousarray(small[..., ::-1]))
    return tuple(textures)


def frost_available() -> bool:
    """Whether the original frost textures can be loaded (see :func:`frost_dir`)."""
    try:
        _frost_textures()
        return True
    except FrostUnavailable:
        return False


def frost(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Frost on the lens: ``clip(a·x + b·crop, 0, 255)`` on 0…255 values, a random texture and crop per image."""
    a, b = FROST[severity - 1]
    textures = _frost_textures()
    n, h, w, _ = images.shape
    top_h, top_w = min(t.shape[0] for t in textures) - 1, min(t.shape[1] for t in textures) - 1
    if h > top_h or w > top_w:
        raise UsageError(f"frost with the CIFAR-C parameters crops its textures (shrunk 0.2x, the smallest "
                         f"{top_h + 1}x{top_w + 1}) and needs images of at most {top_h}x{top_w}; got {h}x{w} "
                         "(leave frost out or use smaller images)")
    out = np.empty_like(images)
    for i in range(n):
        t = textures[int(rng.integers(len(textures)))]
        r0, c0 = int(rng.integers(0, t.shape[0] - h)), int(rng.integers(0, t.shape[1] - w))
        out[i] = np.clip(a * images[i].astype(np.float64) + b * t[r0:r0 + h, c0:c0 + w], 0, 255).astype(np.uint8)
    return out


def fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Fog from a plasma fractal."""
    strength, decay = FOG[severity - 1]

    def one(x: np.ndarray, g: np.random.Generator) -> np.ndarray:
        h, w = x.shape[:2]
        top = x.max()
        x = x + strength * plasma_fractal(max(h, w), decay, g)[:h, :w, None].astype(np.float32)
        return x * top / (top + strength)

    return per_image(images, one, rng)


_SPATTER_KERNEL = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)
_WATER = np.array([175, 238, 238], dtype=np.float32) / np.float32(255.0)
_MUD = np.array([63, 42, 20], dtype=np.float64) / 255.0


def water_mask(liquid: np.ndarray, weight: float) -> np.ndarray:
    """The reference's water drops from a thresholded liquid field ``(H, W)`` float64: float32 ``(H, W)``.

    ``l8 = uint8(255·liquid)``; OpenCV's Canny (50, 150) edges, L2 distance transform (5×5 mask, OpenCV's
    approximation), truncated at 20, 3×3 box blur (float32) cast to uint8, histogram equalisation, the 3×3
    emboss kernel (saturated to uint8), 3×3 box blur; ``m = l8·dist / max · weight``.
    """
    l8 = (liquid * 255).astype(np.uint8)
    dist = cv2.distanceTransform(255 - cv2.Canny(l8, 50, 150), cv2.DIST_L2, 5)
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
    dist = cv2.blur(cv2.filter2D(dist, cv2.CV_8U, _SPATTER_KERNEL), (3, 3)).astype(np.float32)
    m = l8 * dist
    top = m.max()
    return (m / top if top > 0 else m) * np.float32(weight)


def spatter(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Water (severity 1–3) or mud (4–5) drops from a thresholded, blurred Gaussian field, with OpenCV's steps
    where the reference uses OpenCV (:func:`water_mask`); float32 images as in the reference."""
    c = SPATTER[severity - 1]
    n, h, w, _ = images.shape
    out = np.empty_like(images)
    for i in range(n):
        x = images[i].astype(np.float32) / np.float32(255.0)
        liquid = gaussian_blur_hw(rng.normal(c[0], c[1], size=(h, w)), c[2])
        liquid[liquid < c[3]] = 0
        if c[5] == 0:
            y = x + water_mask(liquid, c[4])[..., None] * _WATER
        else:
            mud = gaussian_blur_hw((liquid > c[3]).astype(np.float32), c[4])
            mud[mud < 0.8] = 0
            y = x * (1 - mud[..., None]) + _MUD * mud[..., None]
        out[i] = to_uint8(y)
    return out

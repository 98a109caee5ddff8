"""The 19 CIFAR-10-C corruptions, generated on the fly from clean uint8 images, and their groups.

``corrupt(images, name, severity, seed)`` maps uint8 ``(N, H, W, C)`` (``C`` = 3, or 1 for grey models) to
uint8 of the same shape with the CIFAR-10-C parameters of ``severity`` (1…5), reproducibly for a given
``seed``. Noise is drawn in the images' own channel space: a grey image gets one draw per pixel, so its
noise has the table's σ / amount (not the ~1/√3 weaker average of three RGB draws). Groups: ``noise``,
``blur``, ``weather``, ``digital`` (the 15 ``benchmark`` corruptions), ``extra`` (4 more), ``all`` (19).
``frost`` needs the original textures (package ``imagecorruptions``); see :func:`frost_available`.
"""

from __future__ import annotations

import difflib
from typing import Callable

import numpy as np

from . import blur, digital, noise, weather
from .noise import SDNET_LEVELS, sdnet_noise
from .weather import FrostUnavailable, frost_available
from ...errors import UsageError

CorruptionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

GROUPS: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog"),
    "digital": ("brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": ("speckle_noise", "gaussian_blur", "spatter", "saturate"),
}
BENCHMARK: tuple[str, ...] = GROUPS["noise"] + GROUPS["blur"] + GROUPS["weather"] + GROUPS["digital"]
ALL: tuple[str, ...] = BENCHMARK + GROUPS["extra"]
SEVERITIES = (1, 2, 3, 4, 5)
# corruptions that act on each value independently: applied to grey images directly; the others (colour,
# blur, weather) are applied to the grey image repeated to RGB, and the first channel is kept
ELEMENTWISE = frozenset(("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"))

_FUNCS: dict[str, CorruptionFn] = {
    "gaussian_noise": noise.gaussian_noise, "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise, "speckle_noise": noise.speckle_noise,
    "defocus_blur": blur.defocus_blur, "glass_blur": blur.glass_blur, "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur, "gaussian_blur": blur.gaussian_blur,
    "snow": weather.snow, "frost": weather.frost, "fog": weather.fog, "spatter": weather.spatter,
    "brightness": digital.brightness, "contrast": digital.contrast, "saturate": digital.saturate,
    "elastic_transform": digital.elastic_transform, "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
}
assert set(_FUNCS) == set(ALL)

__all__ = ["ALL", "BENCHMARK", "ELEMENTWISE", "GROUPS", "SEVERITIES", "SDNET_LEVELS", "FrostUnavailable", "corrupt",
           "frost_available", "parse_corruptions", "parse_severities", "sdnet_noise"]


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(ALL) + list(GROUPS) + ["all", "benchmark"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown corruption {name!r}{hint}; valid: all, benchmark, {', '.join(GROUPS)} "
            f"or any of {', '.join(ALL)}")


def parse_corruptions(spec: str) -> list[str]:
    """``'all'``, ``'benchmark'``, a group, or a comma list of groups and names → corruption names in order."""
    out: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        names = ALL if item == "all" else BENCHMARK if item == "benchmark" else GROUPS.get(item)
        if names is None:
            if item not in _FUNCS:
                raise UsageError(_unknown(item))
            names = (item,)
        out.extend(n for n in names if n not in out)
    if not out:
        raise UsageError(f"no corruption given; valid: all, benchmark, {', '.join(GROUPS)} or names")
    return out


def parse_severities(spec: str, max_level: int = 5) -> list[int]:
    """``'1-5'``, ``'3,5'`` or ``'2'`` → sorted unique levels, each in ``1…max_level``."""
    levels: set[int] = set()
    try:
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                levels.update(range(lo, hi + 1))
            else:
                levels.add(int(part))
    except ValueError:
        raise UsageError(f"bad severities {spec!r}: use a range like 1-5 or a list like 3,5") from None
    bad = sorted(v for v in levels if not 1 <= v <= max_level)
    if bad or not levels:
        raise UsageError(f"severity must be within 1-{max_level}, got {spec!r}")
    return sorted(levels)


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``name`` at ``severity`` (1…5) applied to uint8 ``(N, H, W, C)`` images (C = 3 or 1); uint8, same shape, seeded.

    Raises ``ValueError`` for an unknown name, a severity outside 1–5 or a wrong image array, and
    :class:`FrostUnavailable` for ``frost`` without the original textures.
    """
    if name not in _FUNCS:
        raise UsageError(_unknown(name))
    if not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise UsageError(f"severity must be an integer within 1-5, got {severity!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UsageError(f"corrupt() needs uint8 images (N, H, W, 3) or (N, H, W, 1), got {images.dtype} {images.shape}")
    rng = np.random.default_rng(seed)
    if images.shape[-1] == 1 and name not in ELEMENTWISE:
        out = np.ascontiguousarray(_FUNCS[name](np.repeat(images, 3, axis=-1), int(severity), rng)[..., :1])
    else:
        out = _FUNCS[name](images, int(severity), rng)
    assert out.dtype == np.uint8 and out.shape == images.shape, (name, out.dtype, out.shape)
    return out

"""The test conditions of a robustness run: (corruption, severity) → uint8 images and labels.

Three sources: the distributed CIFAR-C ``.npy`` files (:mod:`sdnet_cli.data.cifar_c`), the 19
corruptions generated from a clean test set with the CIFAR-C parameters, or the SDNet paper's noise
protocol (``sdnet-noise``: Gaussian, shot, speckle, impulse at the paper's harsher levels). Generated
images are seeded per (seed, corruption, severity), so every model of a run sees the same images.
Images are corrupted in the model's own channel space (``channels`` 1: grey, the first channel of the
RGB images, as training feeds it; 3: RGB), so a grey model sees noise of the table's strength.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..data import cifar_c
from ..data.corruptions import ALL, SDNET_LEVELS, corrupt, frost_available, parse_severities, sdnet_noise
from ..data.corruptions.cache import cache_folder, generate, load_block
from ..errors import UsageError

PROTOCOLS = ("cifar-c", "sdnet-noise")


@dataclass
class Condition:
    """One test condition; ``severity`` 0 is the clean set, ``param`` the noise level of ``sdnet-noise``."""

    corruption: str
    severity: int
    images: np.ndarray
    labels: np.ndarray
    param: float | None = None


def condition_seed(seed: int, corruption: str, severity: int, protocol: str = "cifar-c") -> int:
    """A stable 32-bit seed for one (corruption, severity) of a run seeded with ``seed``."""
    key = [int(seed), ALL.index(corruption), int(severity), PROTOCOLS.index(protocol)]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def skipped(corruptions: list[str], cifar_c_dir: Path | None) -> dict[str, str]:
    """Corruptions that cannot be generated here, with the reason (frost without its textures)."""
    if cifar_c_dir is None and "frost" in corruptions and not frost_available():
        return {"frost": "skipped: the original frost textures are not installed (pip install imagecorruptions); "
                         "never replaced by fake ones"}
    return {}


def top_level(protocol: str, corruption: str) -> int:
    """The highest level of ``corruption`` in ``protocol`` (CIFAR-C: 5; sdnet-noise: 10, speckle 6)."""
    return len(SDNET_LEVELS[corruption]) if protocol == "sdnet-noise" else 5


def parse_levels(spec: str | None, corruptions: list[str], protocol: str) -> dict[str, tuple[int, ...]]:
    """Levels per corruption from ``--severities``: ``None``/``all`` = every level of each corruption in
    ``protocol``; ``1-5`` or ``3,5`` = those levels for all; ``NAME=LEVELS;NAME=LEVELS`` per corruption (the
    others keep all their levels). Levels outside a corruption's range are a :class:`UsageError`."""
    out = {c: tuple(range(1, top_level(protocol, c) + 1)) for c in corruptions}
    if spec is None or spec.strip().lower() == "all":
        return out
    parts = [p.strip() for p in spec.split(";") if p.strip()]
    if not parts:
        raise UsageError(f"bad --severities {spec!r}: use all, a range like 1-5, a list like 3,5, or NAME=1-9")
    for part in parts:
        name, _, levels = part.rpartition("=") if "=" in part else ("", "", part)
        targets = [name.strip()] if name else list(corruptions)
        for c in targets:
            if c not in out:
                raise UsageError(f"--severities names {c!r}, which is not among the corruptions run "
                                 f"({', '.join(corruptions)})")
            top = top_level(protocol, c)
            if levels.strip().lower() == "all":
                continue
            try:
                out[c] = tuple(parse_severities(levels, top))
            except UsageError:
                raise UsageError(f"{c} has levels 1-{top} in the {protocol} protocol; got {levels.strip()!r} "
                                 "(use --severities all for every level of each)") from None
    return out


def subsample(n: int, max_images: int | None, seed: int) -> np.ndarray | None:
    """Seeded sorted subset of ``range(n)`` of size ``max_images`` (None: keep all)."""
    if max_images is None or max_images >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_images, replace=False))


def in_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 RGB ``(N, H, W, 3)`` in a model's channel space: itself (3) or its first channel ``(N, H, W, 1)``."""
    return np.ascontiguousarray(images[..., :1]) if channels == 1 and images.shape[-1] != 1 else images


def iter_conditions(
    levels: dict[str, tuple[int, ...]],
    protocol: str = "cifar-c",
    clean: tuple[np.ndarray, np.ndarray] | None = None,
    cifar_c_dir: Path | None = None,
    seed: int = 0,
    max_images: int | None = None,
    channels: int = 3,
    generated: Path | None = None,
) -> Iterator[Condition]:
    """Yield the clean condition (when ``clean`` is given), then every (corruption, level) of ``levels``.

    ``generated``: a folder of :func:`generate_cached` for these clean images; its blocks are read instead
    of corrupting again (the same images: block ``s`` is ``corrupt(clean, name, s, condition_seed(…))``)."""
    if clean is not None:
        idx = subsample(len(clean[1]), max_images, seed)
        images, labels = clean if idx is None else (clean[0][idx], clean[1][idx])
        clean = in_channels(clean[0], channels), clean[1]
        yield Condition("clean", 0, in_channels(images, channels), labels)
    skip = skipped(list(levels), cifar_c_dir)
    for name, sevs in levels.items():
        if name in skip:
            continue
        for sev in sevs:
            if cifar_c_dir is not None:
                images, labels = cifar_c.load_cifar_c(cifar_c_dir, name, sev)
                idx = subsample(len(labels), max_images, seed)
                if idx is not None:
                    images, labels = images[idx], labels[idx]
                yield Condition(name, sev, in_channels(images, channels), labels)
                continue
            assert clean is not None, "generated corruptions need the clean test set"
            idx = subsample(len(clean[1]), max_images, seed)
            base, labels = clean if idx is None else (clean[0][idx], clean[1][idx])
            rng_seed = condition_seed(seed, name, sev, protocol)
            if protocol == "sdnet-noise":
                images = sdnet_noise(base, name, sev, np.random.default_rng(rng_seed))
                yield Condition(name, sev, images, labels, SDNET_LEVELS[name][sev - 1])
            elif generated is not None and idx is None:
                yield Condition(name, sev, load_block(generated, name, sev), labels)
            else:
                yield Condition(name, sev, corrupt(base, name, sev, rng_seed), labels)


def generate_cached(root: Path, levels: dict[str, tuple[int, ...]], clean: tuple[np.ndarray, np.ndarray], seed: int,
                    channels: int, on_done: Callable[[str, int], None] | None = None) -> Path:
    """Generate (in parallel, all 5 severities of each corruption) or reuse the CIFAR-C-layout set of ``clean``
    in the model's channel space under ``root/generated-c/``; the folder for ``iter_conditions(generated=…)``."""
    images = in_channels(clean[0], channels)
    folder = cache_folder(root, images, clean[1], seed)
    names = [c for c in levels if c not in skipped(list(levels), None)]
    return generate(folder, images, clean[1], names, lambda c, s: condition_seed(seed, c, s), on_done=on_done)


def count_conditions(levels: dict[str, tuple[int, ...]], cifar_c_dir: Path | None, with_clean: bool) -> int:
    """How many conditions :func:`iter_conditions` will yield."""
    skip = skipped(list(levels), cifar_c_dir)
    return int(with_clean) + sum(len(v) for c, v in levels.items() if c not in skip)

"""The test conditions of a robustness run: (corruption, severity) → uint8 images and labels.

Three sources: the distributed CIFAR-C ``.npy`` files (:mod:`sdnet_cli.data.cifar_c`), the 19
corruptions generated from a clean test set with the CIFAR-C parameters, or the SDNet paper's noise
protocol (``sdnet-noise``: Gaussian, shot, speckle, impulse at the paper's harsher levels). Generated
images are seeded per (seed, corruption, severity), so every model of a run sees the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..data import cifar_c
from ..data.corruptions import ALL, SDNET_LEVELS, corrupt, frost_available, sdnet_noise
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


def check_protocol(protocol: str, corruptions: list[str], severities: list[int]) -> None:
    """Raise ``ValueError`` for corruptions or levels a protocol does not have."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if protocol == "sdnet-noise":
        bad = [c for c in corruptions if c not in SDNET_LEVELS]
        if bad:
            raise UsageError(f"the sdnet-noise protocol has only {', '.join(SDNET_LEVELS)}; not {', '.join(bad)}")


def skipped(corruptions: list[str], cifar_c_dir: Path | None) -> dict[str, str]:
    """Corruptions that cannot be generated here, with the reason (frost without its textures)."""
    if cifar_c_dir is None and "frost" in corruptions and not frost_available():
        return {"frost": "skipped: the original frost textures are not installed (pip install imagecorruptions); "
                         "never replaced by fake ones"}
    return {}


def levels_for(protocol: str, corruption: str, severities: list[int] | None) -> list[int]:
    """Severities (CIFAR-C: 1…5) or levels (sdnet-noise: 1…K) to run for ``corruption``."""
    top = len(SDNET_LEVELS[corruption]) if protocol == "sdnet-noise" else 5
    if severities is None:
        return list(range(1, top + 1))
    bad = [s for s in severities if not 1 <= s <= top]
    if bad:
        raise UsageError(f"{corruption} has levels 1-{top} in the {protocol} protocol; got {', '.join(map(str, bad))}")
    return list(severities)


def subsample(n: int, max_images: int | None, seed: int) -> np.ndarray | None:
    """Seeded sorted subset of ``range(n)`` of size ``max_images`` (None: keep all)."""
    if max_images is None or max_images >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_images, replace=False))


def iter_conditions(
    corruptions: list[str],
    severities: list[int] | None,
    protocol: str = "cifar-c",
    clean: tuple[np.ndarray, np.ndarray] | None = None,
    cifar_c_dir: Path | None = None,
    seed: int = 0,
    max_images: int | None = None,
) -> Iterator[Condition]:
    """Yield the clean condition (when ``clean`` is given), then every (corruption, severity)."""
    if clean is not None:
        idx = subsample(len(clean[1]), max_images, seed)
        images, labels = clean if idx is None else (clean[0][idx], clean[1][idx])
        yield Condition("clean", 0, images, labels)
    skip = skipped(corruptions, cifar_c_dir)
    for name in corruptions:
        if name in skip:
            continue
        for sev in levels_for(protocol, name, severities):
            if cifar_c_dir is not None:
                images, labels = cifar_c.load_cifar_c(cifar_c_dir, name, sev)
                idx = subsample(len(labels), max_images, seed)
                if idx is not None:
                    images, labels = images[idx], labels[idx]
                yield Condition(name, sev, images, labels)
                continue
            assert clean is not None, "generated corruptions need the clean test set"
            idx = subsample(len(clean[1]), max_images, seed)
            base, labels = clean if idx is None else (clean[0][idx], clean[1][idx])
            rng_seed = condition_seed(seed, name, sev, protocol)
            if protocol == "sdnet-noise":
                images = sdnet_noise(base, name, sev, np.random.default_rng(rng_seed))
                yield Condition(name, sev, images, labels, SDNET_LEVELS[name][sev - 1])
            else:
                yield Condition(name, sev, corrupt(base, name, sev, rng_seed), labels)


def count_conditions(corruptions: list[str], severities: list[int] | None, protocol: str,
                     cifar_c_dir: Path | None, with_clean: bool) -> int:
    """How many conditions :func:`iter_conditions` will yield."""
    skip = skipped(corruptions, cifar_c_dir)
    return int(with_clean) + sum(len(levels_for(protocol, c, severities)) for c in corruptions if c not in skip)

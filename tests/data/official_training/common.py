"""What the reference generator and tests/test_official_training.py share: the synthetic run and its digests.

No official code here (numpy only), so the test imports it without the official repository. Everything is a
pure function of the constants below: the data, the initial weights and the batch order of each epoch.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

MODELS = ("sdnet18", "sdnet18_all")  # sdnet18_all with the shortcut (MODEL.SHORTCUT True)
N_TRAIN, N_VAL, BATCH, VAL_BATCH, IMAGE, CLASSES, EPOCHS = 36, 12, 8, 6, 8, 10, 3  # 5 steps an epoch (last: 4 images)
# experiments/cifar10.yaml (SGD, Nesterov) and train.py's eta_min, but lr 0.01: at 0.1 these random labels make
# the run chaotic (loss 2.7 -> 20 in one step) and float64 rounding grows x10 a step (7e-10 of the loss by step 15).
LR, MOMENTUM, WD, MIN_LR = 0.01, 0.9, 5e-4, 1e-6
SEED = 7  # the data order (epoch_order) and the first power-iteration vectors (torch.manual_seed in the generator)
DATA_SEED, INIT_SEED, DIGEST_SEED = 11, 13, 17
SAMPLES = 32  # entries of each final tensor stored by value (all of it when it has at most FULL entries)
FULL = 64

_WRAPPERS = re.compile(r"\.dn(?=\.)|\.layers(?=\.)")


def to_ours(key: str) -> str:
    """An official state-dict key in our naming (``module.`` prefix, ``.dn`` and ``.layers`` dropped; the same
    mapping as ``sdnet_cli.hub.official.official_to_ours``, which the test checks)."""
    return _WRAPPERS.sub("", key[len("module."):] if key.startswith("module.") else key)


def synthetic_data() -> dict[str, np.ndarray]:
    """Training and validation images ``(N, 3, IMAGE, IMAGE)`` float64 (standard normal) and labels."""
    rng = np.random.default_rng(DATA_SEED)
    return {"x_train": rng.standard_normal((N_TRAIN, 3, IMAGE, IMAGE)), "y_train": np.arange(N_TRAIN) % CLASSES,
            "x_val": rng.standard_normal((N_VAL, 3, IMAGE, IMAGE)), "y_val": (np.arange(N_VAL) * 3) % CLASSES}


def epoch_order(epoch: int) -> np.ndarray:
    """The order of epoch ``epoch``: sdnet's ``engine.distributed.epoch_permutation(N_TRAIN, SEED, epoch)``."""
    return np.random.default_rng([SEED & 0xFFFFFFFF, int(epoch)]).permutation(N_TRAIN)


def epoch_batches(epoch: int) -> list[list[int]]:
    """Batches of ``BATCH`` in :func:`epoch_order`, the last partial one kept (as the official DataLoader)."""
    order = epoch_order(epoch).tolist()
    return [order[i:i + BATCH] for i in range(0, N_TRAIN, BATCH)]


def _rng(key: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def initial_value(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """The initial float64 value of state entry ``key`` (our naming): weights ~ N(0, 1/fan_in), BatchNorm
    near its defaults, step sizes 0.1 (overwritten before use), counters 0."""
    rng, name = _rng(key, INIT_SEED), key.rsplit(".", 1)[-1]
    if name == "num_batches_tracked":
        return np.zeros(shape)
    if name == "step_size":
        return np.full(shape, 0.1)
    if name == "running_var":
        return 1.0 + 0.1 * rng.random(shape)
    if name in ("running_mean", "bias"):
        return 0.1 * rng.standard_normal(shape)
    if len(shape) == 1:  # a BatchNorm weight
        return 1.0 + 0.1 * rng.standard_normal(shape)
    return rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))


def nudged(key: str, value: np.ndarray) -> np.ndarray:
    """``value`` changed by float64 rounding: each entry times ``1 ± 2⁻⁵²`` (a fixed sign per entry). The
    reference is run a second time from these weights; how far that run moves off is the trajectory's own
    rounding spread (sdnet18_all amplifies rounding ~1000x in its first step, then 10-100x a step)."""
    signs = np.where(_rng(key, DIGEST_SEED + 1).random(np.shape(value)) < 0.5, -1.0, 1.0)
    return np.asarray(value * (1.0 + signs * 2.0**-52))


def digest(key: str, value: np.ndarray) -> np.ndarray:
    """What is stored of a final tensor: its sum, its norm, two fixed Gaussian projections and ``SAMPLES``
    entries at fixed places (every entry, in order, when it has at most ``FULL``)."""
    flat = np.asarray(value, dtype=np.float64).reshape(-1)
    rng = _rng(key, DIGEST_SEED)
    proj = rng.standard_normal((2, flat.size)) @ flat
    picks = flat if flat.size <= FULL else flat[rng.choice(flat.size, SAMPLES, replace=False)]
    return np.concatenate([[flat.sum(), np.linalg.norm(flat)], proj, picks])

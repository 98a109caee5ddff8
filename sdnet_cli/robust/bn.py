"""Test-time λ with BatchNorm re-estimation (``--recalibrate-bn N``).

Raising λ of a CSC layer makes its codes sparser and smaller, which shifts the statistics that the
BatchNorm after it (and, through it, every later BatchNorm) was fitted to. ``recalibrated_stats`` re-estimates
the running mean and variance of **every** BatchNorm layer of the model (the shift propagates through the
whole network, so re-estimating only the one after the first CSC layer leaves the others off) as the cumulative
average over the batches of ``N`` clean images held out from the training data, with the model at the test-time λ; the
learned affine parameters and every other weight stay as trained. Test images are never used: the
statistics are a function of the model, the λ and the held-out images only.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .accuracy import lmbd_override

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)
Stats = dict[str, Tensor]


def bn_layers(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """Every BatchNorm layer of ``model`` with its name, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BN_TYPES)]


def bn_stats(model: nn.Module) -> Stats:
    """The running statistics of every BatchNorm layer (copies), keyed ``<layer>.running_mean|var``."""
    out: Stats = {}
    for name, m in bn_layers(model):
        if m.running_mean is not None:
            out[f"{name}.running_mean"] = m.running_mean.detach().clone()
            out[f"{name}.running_var"] = m.running_var.detach().clone()
    return out


def load_bn_stats(model: nn.Module, stats: Stats) -> None:
    """Write ``stats`` (from :func:`bn_stats`) back into the model's BatchNorm layers."""
    for name, m in bn_layers(model):
        if f"{name}.running_mean" in stats:
            m.running_mean.copy_(stats[f"{name}.running_mean"])
            m.running_var.copy_(stats[f"{name}.running_var"])


def stats_digest(stats: Stats) -> str:
    """SHA-256 of the statistics (names and float32 bytes): equal digests ⇔ equal statistics."""
    h = hashlib.sha256()
    for key in sorted(stats):
        h.update(key.encode())
        h.update(np.ascontiguousarray(stats[key].float().cpu().numpy()).tobytes())
    return h.hexdigest()


@torch.no_grad()
def recalibrated_stats(model: nn.Module, x: Tensor, lmbd: float | np.ndarray | None, layers: str = "first",
                       batch_size: int = 500, device: str | torch.device = "cpu") -> Stats:
    """BatchNorm statistics re-estimated on normalised held-out images ``x`` ``(N, C, H, W)`` at ``lmbd``
    (float, per-sample ``(N,)`` or None); the model is left exactly as it was."""
    saved = bn_stats(model)
    found = bn_layers(model)
    momenta = [m.momentum for _, m in found]
    try:
        for _, m in found:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches (equal weight per batch)
            m.train()
        # equal chunks, so no batch has a single image (BatchNorm cannot train on one value per channel)
        for idx in np.array_split(np.arange(len(x)), max(1, -(-len(x) // batch_size))):
            batch_lmbd: float | Tensor | None = lmbd if not isinstance(lmbd, np.ndarray) else torch.as_tensor(
                lmbd[idx], dtype=torch.float32, device=device).view(-1, 1, 1, 1)
            with lmbd_override(model, batch_lmbd, layers):
                model(x[idx].to(device))
        return bn_stats(model)
    finally:
        for (_, m), mom in zip(found, momenta):
            m.momentum = mom
            m.eval()
        load_bn_stats(model, saved)


@contextmanager
def using_bn_stats(model: nn.Module, stats: Stats | None) -> Iterator[None]:
    """Evaluate with ``stats`` in the BatchNorm layers (no-op for None), restoring the trained ones after."""
    if stats is None:
        yield
        return
    saved = bn_stats(model)
    load_bn_stats(model, stats)
    try:
        yield
    finally:
        load_bn_stats(model, saved)

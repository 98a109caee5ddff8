"""Effect of λ on the first CSC layer: reconstruction error, sparsity, and the decoded images.

For each λ the layer codes its input ``x`` with ``n_steps`` FISTA steps, ``z_λ = layer(x)``, and decodes
``x̂_λ = D z_λ``. Reported per λ (means over the batch): relative error ``‖x − x̂_λ‖² / ‖x‖²``, absolute
error ``‖x − x̂_λ‖²``, PSNR ``10·log10(range(x)² / mse)`` and the fraction of non-zero code entries.
The layer's ``lmbd`` and ``n_steps`` are restored afterwards.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from ..checks import is_real
from ..layers.csc import CSCConv2d
from ..errors import UsageError

DEFAULT_VIEW_LMBDS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


@contextmanager
def layer_settings(layer: CSCConv2d, lmbd: float | Tensor | None = None, n_steps: int | None = None) -> Iterator[CSCConv2d]:
    """Temporarily set ``layer.lmbd`` / ``layer.n_steps``; the old values come back on exit."""
    old_lmbd, old_steps = layer.lmbd, layer.n_steps
    try:
        if lmbd is not None:
            layer.lmbd = lmbd
        if n_steps is not None:
            layer.n_steps = int(n_steps)
        yield layer
    finally:
        layer.lmbd, layer.n_steps = old_lmbd, old_steps


def psnr(x: Tensor, x_hat: Tensor) -> Tensor:
    """Per-sample PSNR in dB, ``10·log10(peak² / mse)`` with ``peak = max(x) − min(x)`` of each sample ``(N,)``."""
    xf, hf = x.flatten(1), x_hat.flatten(1)
    mse = (xf - hf).pow(2).mean(1).clamp_min(1e-20)
    peak = (xf.amax(1) - xf.amin(1)).clamp_min(1e-12)
    return 10.0 * torch.log10(peak.pow(2) / mse)


@torch.no_grad()
def decode_with(layer: CSCConv2d, x: Tensor, lmbd: float, n_steps: int | None = None) -> tuple[Tensor, Tensor]:
    """``(z, D z)`` for ``x`` coded by ``layer`` with λ = ``lmbd`` (and ``n_steps`` when given)."""
    with layer_settings(layer, lmbd, n_steps):
        z = layer(x)
        return z, layer.decode(z)


def check_lmbds(lmbds: Sequence[float]) -> None:
    """:class:`UsageError` unless ``lmbds`` is a non-empty list of finite numbers >= 0 (``--lambdas``)."""
    if not lmbds or any(not (is_real(v) and math.isfinite(v) and v >= 0) for v in lmbds):
        raise UsageError(f"--lambdas must be finite numbers >= 0 (e.g. 0,0.1,0.5,1), got {list(lmbds)}")


@torch.no_grad()
def lmbd_sweep(layer: CSCConv2d, x: Tensor, lmbds: Sequence[float] = DEFAULT_VIEW_LMBDS,
               n_steps: int | None = None, keep: int = 1) -> dict[str, Any]:
    """Sweep λ on ``layer`` for input ``x`` ``(N, C, H, W)`` (normalised); ``lmbds`` checked by :func:`check_lmbds`.

    Returns ``{'lambdas', 'rel_error', 'sq_error', 'psnr', 'nonzero_fraction'}`` (lists, one value per λ,
    batch means), ``'n_steps'``, and ``'decoded'`` = tensor ``(len(lmbds), keep, C, H, W)`` holding
    ``D z_λ`` of the first ``keep`` images.
    """
    check_lmbds(lmbds)
    return checked_lmbd_sweep(layer, x, lmbds, n_steps, keep)


@torch.no_grad()
def checked_lmbd_sweep(layer: CSCConv2d, x: Tensor, lmbds: Sequence[float], n_steps: int | None = None,
                       keep: int = 1) -> dict[str, Any]:
    """:func:`lmbd_sweep` for λ values already checked (:class:`~sdnet_cli.viz.FigureOptions` checked them)."""
    if layer.training:
        raise UsageError("put the model in eval mode before a λ sweep")
    out: dict[str, Any] = {"lambdas": [float(v) for v in lmbds], "n_steps": int(n_steps or layer.n_steps),
                           "rel_error": [], "sq_error": [], "psnr": [], "nonzero_fraction": []}
    decoded = []
    energy = x.flatten(1).pow(2).sum(1).clamp_min(1e-20)
    for lmbd in lmbds:
        z, x_hat = decode_with(layer, x, float(lmbd), n_steps)
        sq = (x - x_hat).flatten(1).pow(2).sum(1)
        out["sq_error"].append(float(sq.mean()))
        out["rel_error"].append(float((sq / energy).mean()))
        out["psnr"].append(float(psnr(x, x_hat).mean()))
        out["nonzero_fraction"].append(float((z != 0).float().mean()))
        decoded.append(x_hat[:keep])
    out["decoded"] = torch.stack(decoded)
    return out

"""Sparsity of every CSC layer's code: fraction of non-zero entries and the distribution of the values."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .probe import CodeRecord


def nonzero_fraction(code: Tensor) -> float:
    """Fraction of entries of ``code`` (any shape) that are not exactly zero."""
    return float((code != 0).float().mean())


def code_histogram(code: Tensor, bins: int = 30) -> dict[str, list[float]]:
    """Histogram of the non-zero entries of ``code``: ``{'edges': bins+1 floats, 'counts': bins ints}``."""
    nz = code[code != 0].float().cpu()
    if nz.numel() == 0:
        return {"edges": [0.0, 1.0], "counts": [0]}
    lo, hi = float(nz.min()), float(nz.max())
    if hi <= lo:
        hi = lo + 1e-6
    counts = torch.histc(nz, bins=bins, min=lo, max=hi)
    edges = torch.linspace(lo, hi, bins + 1)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def sparsity_stats(records: list[CodeRecord], bins: int = 30) -> list[dict[str, Any]]:
    """One row per CSC layer: name, code shape, λ, nonzero fraction, per-sample spread and histogram."""
    rows = []
    for r in records:
        per_sample = (r.code != 0).flatten(1).float().mean(1)
        lmbd = r.layer.lmbd
        rows.append({
            "layer": r.name,
            "code_shape": list(r.code.shape[1:]),
            "lmbd": float(lmbd.mean()) if isinstance(lmbd, Tensor) else float(lmbd),
            "n_steps": int(r.layer.n_steps),
            "nonzero_fraction": nonzero_fraction(r.code),
            "nonzero_fraction_min": float(per_sample.min()),
            "nonzero_fraction_max": float(per_sample.max()),
            "entries": int(r.code.numel()),
            "histogram": code_histogram(r.code, bins),
        })
    return rows

"""Display transforms for decoded images: de-normalisation, min–max and histogram equalisation.

All functions take and return ``(N, C, H, W)`` float tensors; the views are in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from ..errors import UsageError

LEVELS = 256


def denormalize(x: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    """Undo the input normalisation: ``x · std + mean`` per channel (identity when mean/std are unknown)."""
    if mean is None or std is None:
        return x
    m = torch.as_tensor(list(mean), dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(list(std), dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    if m.shape[1] not in (1, x.shape[1]):
        raise UsageError(f"mean/std have {m.shape[1]} channels but the images have {x.shape[1]}")
    return x * s + m


def minmax(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rescale each image and channel to ``[0, 1]``: ``(x − min) / (max − min)`` over ``H, W``.

    A constant channel maps to 0.5.
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    out = (x - lo) / span.clamp_min(eps)
    return torch.where(span > eps, out, torch.full_like(x, 0.5))


def hist_equalize(x: Tensor, levels: int = LEVELS) -> Tensor:
    """Histogram-equalise each image and channel of ``x`` (values in ``[0, 1]``) over ``levels`` grey levels.

    Level ``q = round(x·(levels−1))`` maps to ``(cdf(q) − cdf_min) / (HW − cdf_min)`` where ``cdf`` counts the
    pixels at or below ``q`` and ``cdf_min`` is the count of the darkest level present (the classic
    equalisation); a constant channel is returned unchanged.
    """
    n, c, h, w = x.shape
    q = (x.clamp(0, 1) * (levels - 1)).round().long().reshape(n * c, h * w)
    hist = torch.zeros(n * c, levels, dtype=torch.long, device=x.device).scatter_add_(1, q, torch.ones_like(q))
    cdf = hist.cumsum(1)
    cdf_min = cdf.gather(1, q.amin(dim=1, keepdim=True))
    denom = (h * w - cdf_min).clamp_min(1)
    eq = (cdf.gather(1, q) - cdf_min).to(x.dtype) / denom.to(x.dtype)
    constant = (h * w - cdf_min) <= 0
    eq = torch.where(constant, x.reshape(n * c, h * w).clamp(0, 1), eq)
    return eq.reshape(n, c, h, w)


def views(x: Tensor, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> dict[str, Tensor]:
    """``{'minmax': …, 'histeq': …}`` of de-normalised images ``x`` (the paper's two displays)."""
    mm = minmax(denormalize(x, mean, std))
    return {"minmax": mm, "histeq": hist_equalize(mm)}

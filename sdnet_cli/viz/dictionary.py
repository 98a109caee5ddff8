"""Dictionary atoms of a CSC layer, ranked by how often the codes use them.

An atom is one output filter ``W[j]`` (``(C_in, k, k)``): ``D z = Σ_j W[j] ⋆ z_j``, so atom ``j`` is
*used* at every position where ``z_j ≠ 0``. Usage of atom ``j`` over a batch of codes ``z``
``(N, C_out, H, W)`` = fraction of the ``N·H·W`` positions where ``z_j ≠ 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..layers.csc import CSCConv2d
from ..errors import UsageError


def atom_usage(code: Tensor) -> Tensor:
    """Per-atom usage ``(C_out,)``: fraction of positions (over ``N, H, W``) with a non-zero code."""
    return (code != 0).float().mean(dim=(0, 2, 3))


def atom_images(layer: CSCConv2d) -> Tensor:
    """Atoms as displayable images ``(C_out, k, k, 3)`` in ``[0, 1]``, each min–max rescaled on its own.

    RGB atoms show as colour, one-channel atoms as grey, other inputs as the mean over channels;
    with ``expansion > 1`` the first copy of the input channels is shown.
    """
    w = layer.weight.detach().float().cpu()[:, : layer.in_channels]
    if w.shape[1] == 3:
        img = w
    else:
        img = w.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    img = torch.where(hi - lo > 1e-12, (img - lo) / (hi - lo).clamp_min(1e-12), torch.full_like(img, 0.5))
    return img.permute(0, 2, 3, 1).contiguous()


def tile_grid(tiles: np.ndarray, cols: int | None = None, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Arrange ``tiles`` ``(M, h, w, 3)`` row by row into one image ``(rows·(h+pad)+pad, cols·(w+pad)+pad, 3)``."""
    m, h, w, c = tiles.shape
    cols = cols or max(1, math.ceil(math.sqrt(m)))
    rows = max(1, math.ceil(m / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, dtype=np.float32)
    for i in range(m):
        r, q = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = tiles[i]
    return grid


def dictionary_grid(layer: CSCConv2d, code: Tensor, cols: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(grid, order, usage)``: the atoms sorted by decreasing usage on ``code``, tiled into one image.

    ``order[i]`` is the atom index shown at position ``i``; ``usage`` ``(C_out,)`` in atom order.
    """
    if code.shape[1] != layer.out_channels:
        raise UsageError(f"code has {code.shape[1]} channels but the layer has {layer.out_channels} atoms")
    usage = atom_usage(code).cpu()
    order = torch.argsort(-usage, stable=True)
    tiles = atom_images(layer)[order].numpy()
    return tile_grid(tiles, cols), order.numpy(), usage.numpy()

"""Matplotlib figures (Agg canvas, no pyplot state) written atomically as PNG files.

Every function takes arrays/lists computed by the other ``viz`` modules and a path, and returns the path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from ..fsio import atomic_write_bytes

DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: str | Path) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _hwc(images: Tensor) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] → ``(N, H, W, 3)`` numpy (grey channels repeated)."""
    x = images.detach().float().cpu().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != 3:
        x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).numpy()


def plot_dictionary(grid: np.ndarray, usage_sorted: np.ndarray, title: str, path: str | Path) -> Path:
    """Atom grid (sorted by usage) above a bar chart of the sorted usage."""
    fig = _figure(7.0, 9.0)
    ax, bx = fig.subplots(2, 1, gridspec_kw={"height_ratios": [4, 1.3]})
    ax.imshow(grid, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    bx.stairs(usage_sorted, np.arange(len(usage_sorted) + 1) - 0.5, fill=True, color="tab:blue")
    bx.set_xlabel("atom rank (grid order: left to right, top to bottom)")
    bx.set_ylabel("usage (fraction ≠ 0)")
    bx.set_xlim(-0.5, len(usage_sorted) - 0.5)
    return save_png(fig, path)


def plot_image_rows(rows: list[tuple[str, Tensor]], title: str, path: str | Path,
                    col_titles: Sequence[str] | None = None) -> Path:
    """One labelled row of images per entry ``(label, (N, C, H, W) in [0, 1])``, drawn as a single mosaic."""
    from .dictionary import tile_grid

    n = max(r[1].shape[0] for r in rows)
    h, w = rows[0][1].shape[-2:]
    tiles = np.ones((len(rows) * n, h, w, 3), dtype=np.float32)
    for i, (_, imgs) in enumerate(rows):
        arr = _hwc(imgs)
        tiles[i * n: i * n + len(arr)] = arr
    pad = max(1, h // 8)
    grid = tile_grid(tiles, cols=n, pad=pad)
    scale = max(0.5, min(1.2, 48.0 / h))
    fig = _figure(scale * n + 1.6, scale * len(rows) + 0.8)
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([pad + i * (h + pad) + h / 2 for i in range(len(rows))], [r[0] for r in rows], fontsize=8)
    if col_titles is not None:
        ax.set_xticks([pad + j * (w + pad) + w / 2 for j in range(len(col_titles))], list(col_titles), fontsize=8)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10, pad=18 if col_titles is not None else 6)
    return save_png(fig, path)


def plot_sparsity(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Bar chart of each CSC layer's non-zero fraction (with the per-sample min–max range)."""
    names = [r["layer"] for r in rows]
    frac = np.array([r["nonzero_fraction"] for r in rows])
    lo = frac - np.array([r["nonzero_fraction_min"] for r in rows])
    hi = np.array([r["nonzero_fraction_max"] for r in rows]) - frac
    fig = _figure(max(5.0, 0.45 * len(rows) + 2), 4.0)
    ax = fig.subplots()
    ax.bar(range(len(rows)), frac, yerr=np.stack([lo, hi]), capsize=2, color="tab:green")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("fraction of non-zero code entries")
    ax.set_ylim(0, max(1e-3, float((frac + hi).max()) * 1.15))
    ax.set_title("Sparsity per CSC layer (bars: batch mean; whiskers: per-image range)", fontsize=10)
    return save_png(fig, path)


def plot_code_histograms(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Small multiples: histogram of the non-zero code values of each CSC layer (``log10(count + 1)``)."""
    n = len(rows)
    cols = min(4, n)
    nrows = (n + cols - 1) // cols
    fig = _figure(3.0 * cols, 2.3 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, r in zip(axes, rows):
        edges, counts = np.array(r["histogram"]["edges"]), np.array(r["histogram"]["counts"])
        ax.stairs(np.log10(counts + 1.0), edges, fill=True, color="tab:purple")
        ax.set_title(f"{r['layer']}  ({100 * r['nonzero_fraction']:.1f}% ≠ 0)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.locator_params(axis="x", nbins=4)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle("Distribution of the non-zero code values: log10(count + 1) per bin", fontsize=10)
    fig.subplots_adjust(hspace=0.6, wspace=0.3)
    return save_png(fig, path)


def plot_convergence(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Relative gap ``(F(z_k) − F*)/|F*|`` vs FISTA iteration ``k`` per layer; dashed line at the trained steps."""
    from matplotlib import colormaps

    fig = _figure(7.5, 4.8)
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    floor = 1e-8
    for i, r in enumerate(rows):
        f = np.array(r["objective"])
        gap = np.maximum((f - r["optimum"]) / max(abs(r["optimum"]), 1e-20), floor)
        ax.semilogy(np.arange(1, len(f) + 1), gap, color=cmap(i / max(1, len(rows) - 1)), lw=1.2,
                    label=r["layer"])
    steps = sorted({r["trained_steps"] for r in rows})
    for s in steps:
        ax.axvline(s, color="red", ls="--", lw=1)
        ax.text(s + 0.5, ax.get_ylim()[1], f" trained n_steps = {s}", color="red", va="top", fontsize=8)
    ax.set_xlabel("FISTA iteration k")
    ax.set_ylabel("(F(z_k) − F*) / |F*|")
    ax.set_title("Lasso objective vs FISTA iteration, relative to the converged optimum F*", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if len(rows) <= 20:
        ax.legend(fontsize=6, ncol=2 if len(rows) > 8 else 1, loc="lower left")
    return save_png(fig, path)


def plot_lmbd_curves(sweep: dict[str, Any], layer_name: str, path: str | Path) -> Path:
    """Relative reconstruction error and non-zero fraction of the first layer vs λ (symlog λ axis)."""
    lmbds = np.array(sweep["lambdas"])
    fig = _figure(8.5, 3.6)
    ax, bx = fig.subplots(1, 2)
    ax.plot(lmbds, sweep["rel_error"], "o-", color="tab:red")
    ax.set_ylabel("‖x − Dz‖² / ‖x‖²")
    bx.plot(lmbds, sweep["nonzero_fraction"], "o-", color="tab:green")
    bx.set_ylabel("fraction of non-zero code entries")
    for a in (ax, bx):
        a.set_xscale("symlog", linthresh=0.01)
        a.set_xlabel("λ")
        a.grid(True, alpha=0.3)
    fig.suptitle(f"{layer_name}: effect of λ ({sweep['n_steps']} FISTA steps)", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)

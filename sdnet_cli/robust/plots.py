"""PNG plots of a robustness run (matplotlib, Agg backend; files written atomically).

- ``accuracy_vs_severity.png``: per corruption, accuracy against severity at the training λ, the best λ
  of the sweep and the per-sample λ (clean accuracy dashed);
- ``accuracy_vs_lambda.png``: per corruption, accuracy against λ, one line per severity;
- ``lambda_fit.png``: best λ against the first-layer reconstruction error (at the training λ) of each
  test condition and of the calibration points, with the fitted line;
- ``attack.png``: PGD accuracy against λ, one line per ε;  ``comparison.png``: models side by side.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..fsio import atomic_write_bytes  # noqa: E402
from .attacks import ATTACKS  # noqa: E402
from .lmbd_fit import fit_line  # noqa: E402

LABELS = {"train": "training λ", "best": "best λ (oracle)", "auto": "per-sample λ"}


def _save(fig: plt.Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(4, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def accuracy_vs_severity(report: dict[str, Any], path: Path) -> Path | None:
    conds = [c for c in report["summary"]["per_condition"] if c["corruption"] != "clean"]
    if not conds:
        return None
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in conds:
        by[c["corruption"]].append(c)
    clean = report["summary"]["clean"]
    fig, axes = _grid(len(by))
    for ax, (name, cs) in zip(axes, by.items()):
        cs = sorted(cs, key=lambda c: c["severity"])
        sev = [c["severity"] for c in cs]
        for mode in ("train", "best", "auto"):
            ys = [c[f"acc_{mode}"] for c in cs]
            if all(y is not None for y in ys) and (mode == "train" or report["lambdas"] or mode == "auto"):
                ax.plot(sev, ys, marker="o", label=LABELS[mode])
        if clean and clean["train"] is not None:
            ax.axhline(clean["train"], ls="--", c="gray", lw=1, label="clean")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("severity")
        ax.set_ylabel("accuracy (%)")
        ax.set_xticks(sev)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{report['model']}: accuracy vs severity", y=1.02)
    return _save(fig, path)


def accuracy_vs_lmbd(report: dict[str, Any], path: Path) -> Path | None:
    sweep = [r for r in report["results"] if r["mode"] == "sweep" and r["corruption"] not in ATTACKS
             and r.get("bn") != "recalibrated"]
    if not sweep:
        return None
    by: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in sweep:
        by[r["corruption"]][r["severity"]].append((r["lambda"], r["accuracy"]))
    fig, axes = _grid(len(by))
    cmap = plt.get_cmap("viridis")
    for ax, (name, sevs) in zip(axes, by.items()):
        top = max(sevs) or 1
        for sev, pts in sorted(sevs.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=cmap(sev / (top + 1)), marker=".",
                    label="clean" if sev == 0 else f"s{sev}")
        if report["training_lambda"] is not None:
            ax.axvline(report["training_lambda"], ls=":", c="k", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("λ (first layer)" if report["lambda_layers"] == "first" else "λ (all layers)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=6)
    fig.suptitle(f"{report['model']}: accuracy vs test-time λ", y=1.02)
    return _save(fig, path)


def lmbd_fit_plot(report: dict[str, Any], path: Path) -> Path | None:
    conds = [c for c in report["summary"]["per_condition"]
             if c["best_lambda"] is not None and c["recon_error_train"] is not None]
    if not report["lambdas"] or not conds:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    r = np.array([c["recon_error_train"] for c in conds])
    b = np.array([c["best_lambda"] for c in conds])
    ax.scatter(r, b, marker="x", c="tab:red", label="test conditions")
    fit = report.get("lambda_fit")
    if fit:
        cr = np.array([p["recon_error"] for p in fit["points"]])
        ax.scatter(cr, [p["best_lambda"] for p in fit["points"]], marker="o", facecolors="none",
                   edgecolors="tab:blue", label="calibration (held-out images + noise)")
        slope, intercept = fit["slope"], fit["intercept"]
        xs = np.linspace(min(r.min(), cr.min()), max(r.max(), cr.max()), 50)
        label = f"fit λ = {slope:.3g}·r + {intercept:.3g}"
    else:
        slope, intercept = fit_line(r, b)
        xs = np.linspace(r.min(), r.max(), 50)
        label = f"least squares on test points: λ = {slope:.3g}·r + {intercept:.3g}"
    ax.plot(xs, slope * xs + intercept, "k-", label=label)
    ax.set_xlabel("reconstruction error ‖x − Dz‖² at the training λ")
    ax.set_ylabel("best λ")
    ax.legend(fontsize=7)
    ax.set_title(f"{report['model']}: best λ vs reconstruction error", fontsize=9)
    return _save(fig, path)


def attack_plot(report: dict[str, Any], path: Path) -> Path | None:
    rows = [r for r in report["results"] if r["corruption"] in ATTACKS and r["mode"] in ("sweep", "train")]
    if not rows:
        return None
    by: dict[float, dict[float, float]] = defaultdict(dict)
    for r in rows:
        by[r["eps"]][r["lambda"] if r["lambda"] is not None else 0.0] = r["accuracy"]
    fig, ax = plt.subplots(figsize=(5, 4))
    for eps, pts in sorted(by.items()):
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", label=f"ε = {eps:.4g}")
    ax.set_xlabel("λ")
    ax.set_ylabel("accuracy under attack (%)")
    steps = f" ({rows[0]['steps']} steps)" if rows[0].get("steps") else ""
    ax.set_title(f"{report['model']}: {rows[0]['corruption']}{steps}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def comparison_plot(reports: list[dict[str, Any]], path: Path) -> Path | None:
    names = sorted({k for rep in reports for k in rep["summary"]["means"]["train"]["per_corruption"]})
    if not names:
        return None
    bars = []
    for rep in reports:
        for mode in ("train", "auto"):
            per = rep["summary"]["means"][mode]["per_corruption"]
            if per:
                bars.append((f"{rep['model']} ({LABELS[mode]})", [per.get(n) or 0.0 for n in names]))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names) + 2), 4))
    width = 0.8 / max(1, len(bars))
    for i, (label, vals) in enumerate(bars):
        ax.bar(np.arange(len(names)) + i * width, vals, width, label=label)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy, mean over severities (%)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def write_plots(report: dict[str, Any], directory: str | Path) -> list[Path]:
    """Every plot that applies to ``report``, as PNG files in ``directory``."""
    d = Path(directory)
    made = [accuracy_vs_severity(report, d / "accuracy_vs_severity.png"),
            accuracy_vs_lmbd(report, d / "accuracy_vs_lambda.png"),
            lmbd_fit_plot(report, d / "lambda_fit.png"),
            attack_plot(report, d / "attack.png")]
    return [p for p in made if p is not None]

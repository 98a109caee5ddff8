"""Summaries and files of a robustness run: ``results.json``, ``results.csv``, and the comparison of models.

Means, for each λ mode (``train`` = training λ, ``best`` = best λ of the sweep per condition — an oracle
chosen on the test images themselves, ``auto`` = per-sample λ):
- ``mean``: plain mean over every evaluated (corruption, severity);
- ``robustbench``: plain mean over the 15 benchmark corruptions × 5 severities (RobustBench's
  corruption accuracy); ``complete`` says whether all 75 were evaluated (otherwise it is over those present);
- ``augmix``: per corruption the mean over its severities (= accuracy on all its images when the blocks
  are equal in size, as in the CIFAR-C files), then the mean over the benchmark corruptions.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..data.corruptions import BENCHMARK
from ..fsio import atomic_write_bytes, atomic_write_json
from .attacks import ATTACKS

CSV_FIELDS = ("model", "corruption", "severity", "param", "eps", "norm", "lambda", "lambda_std", "mode", "adaptive",
              "bn", "accuracy", "recon_error", "n")
MODES = ("train", "best", "auto")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def per_condition(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (corruption, severity): accuracy at the training λ, the best λ of the sweep, and auto λ."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["corruption"] not in ATTACKS:
            groups[(r["corruption"], r["severity"])].append(r)
    out = []
    for (name, sev), rs in groups.items():
        train = next((r for r in rs if r["mode"] == "train"), None)
        sweep = [r for r in rs if r["mode"] == "sweep"]
        auto = next((r for r in rs if r["mode"] == "auto"), None)
        best = max(sweep, key=lambda r: r["accuracy"]) if sweep else train
        entry = {
            "corruption": name, "severity": sev,
            "acc_train": train["accuracy"] if train else None,
            "train_lambda": train["lambda"] if train else None,
            "recon_error_train": train["recon_error"] if train else None,
            "acc_best": best["accuracy"] if best else None,
            "best_lambda": best["lambda"] if best else None,
            "recon_error_best": best["recon_error"] if best else None,
            "acc_auto": auto["accuracy"] if auto else None,
            "auto_lambda_mean": auto["lambda"] if auto else None,
        }
        if "param" in rs[0]:
            entry["param"] = rs[0]["param"]
        out.append(entry)
    return out


def means(conditions: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """``mean``, ``robustbench``, ``augmix`` and per-corruption means of ``conditions[…][key]`` (clean excluded)."""
    corrupted = [c for c in conditions if c["corruption"] != "clean" and c[key] is not None]
    per_corr: dict[str, list[float]] = defaultdict(list)
    for c in corrupted:
        per_corr[c["corruption"]].append(c[key])
    bench = [c[key] for c in corrupted if c["corruption"] in BENCHMARK]
    bench_corr = [_mean(v) for k, v in per_corr.items() if k in BENCHMARK]
    complete = all(len(per_corr.get(k, [])) == 5 for k in BENCHMARK)
    return {
        "mean": _mean([c[key] for c in corrupted]),
        "robustbench": _mean(bench),
        "augmix": _mean([v for v in bench_corr if v is not None]),
        "complete": complete,
        "per_corruption": {k: _mean(v) for k, v in per_corr.items()},
    }


def summarize(rows: list[dict[str, Any]], include_bn: bool = False) -> dict[str, Any]:
    """The ``summary`` object of ``results.json`` (see the module doc); rows measured with re-estimated
    BatchNorm statistics (``bn: recalibrated``) are left out unless ``include_bn``."""
    rows = [r for r in rows if include_bn or r.get("bn") != "recalibrated"]
    conds = per_condition(rows)
    clean = next((c for c in conds if c["corruption"] == "clean"), None)
    summary: dict[str, Any] = {"per_condition": conds}
    summary["clean"] = {m: clean[f"acc_{m}"] for m in MODES} if clean else None
    summary["means"] = {m: means(conds, f"acc_{m}") for m in MODES}
    base = summary["means"]["train"]["mean"]
    summary["gains"] = {f"{m}_minus_train": (summary["means"][m]["mean"] - base)
                        if base is not None and summary["means"][m]["mean"] is not None else None
                        for m in ("best", "auto")}
    attacks = [r for r in rows if r["corruption"] in ATTACKS]
    if attacks:
        summary["attack"] = [{"attack": r["corruption"], "eps": r["eps"], "norm": r.get("norm"), "lambda": r["lambda"],
                              "mode": r["mode"], "adaptive": r.get("adaptive"), "accuracy": r["accuracy"]}
                             for r in attacks]
    return summary


def csv_text(reports: list[dict[str, Any]]) -> str:
    """All rows of all ``reports`` as CSV (:data:`CSV_FIELDS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rep in reports:
        for r in rep["results"]:
            writer.writerow({"model": rep["model"], **{k: ("" if v is None else v) for k, v in r.items()}})
    return buf.getvalue()


def write_report(report: dict[str, Any], directory: str | Path) -> list[Path]:
    """``results.json`` + ``results.csv`` of one model in ``directory`` (atomic); returns the paths."""
    directory = Path(directory)
    atomic_write_json(directory / "results.json", report)
    atomic_write_bytes(directory / "results.csv", csv_text([report]).encode())
    return [directory / "results.json", directory / "results.csv"]


def comparison(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Side-by-side means of several models: clean and corrupted accuracy per λ mode, per corruption."""
    models = []
    for rep in reports:
        s = rep["summary"]
        models.append({
            "model": rep["model"], "architecture": rep["architecture"], "training_lambda": rep["training_lambda"],
            "clean": s["clean"],
            "mean": {m: s["means"][m]["mean"] for m in MODES},
            "robustbench": {m: s["means"][m]["robustbench"] for m in MODES},
            "augmix": {m: s["means"][m]["augmix"] for m in MODES},
            "per_corruption": {m: s["means"][m]["per_corruption"] for m in MODES},
        })
    return {"models": models}


def write_comparison(reports: list[dict[str, Any]], directory: str | Path) -> list[Path]:
    """``comparison.json`` + ``comparison.csv`` (all rows of all models) in ``directory``."""
    directory = Path(directory)
    atomic_write_json(directory / "comparison.json", comparison(reports))
    atomic_write_bytes(directory / "comparison.csv", csv_text(reports).encode())
    return [directory / "comparison.json", directory / "comparison.csv"]

"""One robustness run of one model: corrupted test sets × test-time λ (+ per-sample λ, + BN re-estimation,
+ attacks).

:func:`run_model` returns the ``results.json`` object ``{"model", "results": [rows], "summary", …}``.
Each row is one evaluation: ``corruption``, ``severity`` (0 = clean), ``lambda`` (None for a plain
ResNet; the mean λ for ``mode='auto'``), ``accuracy`` (%), ``recon_error`` (mean first-layer
``‖x − Dz‖²``), ``mode`` (``train`` = the model's training λ, ``sweep`` = one λ of ``--lambdas``,
``auto`` = per-sample λ from the fit) and ``n`` (images); ``bn: "recalibrated"`` marks the rows measured
with BatchNorm statistics re-estimated at that λ (``--recalibrate-bn``); attack rows add ``eps``, ``norm``
and ``adaptive``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..models.files import ModelConfig
from .adversarial import AttackSpec, attack_rows, targets
from .bn import Stats, recalibrated_stats, stats_digest, using_bn_stats
from ..data.datasets import default_root
from .conditions import count_conditions, generate_cached, in_channels, iter_conditions, skipped, subsample
from .evaluate import EvalResult, evaluate_tensor, first_csc, sweep_lambdas, to_input, to_pixels
from .lambda_fit import LambdaFit, auto_lambda, calibrate
from .options import RobustOptions
from .report import summarize


class Progress(Protocol):
    """Where a run reports progress (the CLI passes a rich progress bar; the library never prints)."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class Silent:
    """A :class:`Progress` that reports nothing."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


@dataclass
class ModelData:
    """The images of one model's run: ``clean`` test set, ``held_out`` clean images held out from training
    (λ calibration, BN re-estimation) and where they come from, the CIFAR-C folder, and notes."""

    clean: tuple[np.ndarray, np.ndarray] | None
    held_out: tuple[np.ndarray, np.ndarray] | None = None
    held_out_source: str = "none"
    cifar_c_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def training_lambda(config: ModelConfig, model: nn.Module) -> float | None:
    """The λ the model was trained with (``model_args['lmbd']``, default 0.1); None without CSC layers."""
    if first_csc(model) is None:
        return None
    return float(config.model_args.get("lmbd", 0.1))


def _row(cond: str, severity: int, lmbd: float | None, res: EvalResult, mode: str, **extra: Any) -> dict[str, Any]:
    row = {"corruption": cond, "severity": severity, "lambda": lmbd, "accuracy": res.accuracy,
           "recon_error": res.recon_error, "mode": mode, "n": int(len(res.correct))}
    row.update(extra)
    return row


def _fit(model: nn.Module, opts: RobustOptions, data: ModelData, mean: list[float], std: list[float],
         lm_train: float, progress: Progress, label: str) -> LambdaFit:
    if opts.lambda_fit is not None:
        return LambdaFit.load(opts.lambda_fit)
    assert data.held_out is not None, "robust.run loads the held-out images for --auto-lambda"
    grid = list(opts.lambdas) if len(opts.lambdas) >= 2 else [round(0.1 * k, 1) for k in range(1, 15)]
    idx = subsample(len(data.held_out[1]), opts.calib_images, opts.seed + 1)
    ci, cl = data.held_out if idx is None else (data.held_out[0][idx], data.held_out[1][idx])
    from .lambda_fit import DEFAULT_NOISES

    progress.start(f"{label}: calibrating per-sample λ", len(DEFAULT_NOISES) * len(grid))
    return calibrate(model, in_channels(ci, len(mean)), cl, mean, std, grid, lm_train, opts.lmbd_layers,
                     seed=opts.seed, batch_size=opts.batch_size, device=opts.device, on_step=progress.advance,
                     split=data.held_out_source)


def _bn_stats(model: nn.Module, opts: RobustOptions, data: ModelData, mean: list[float], std: list[float],
              grid: list[float | None], fit: LambdaFit | None) -> dict[str, Stats]:
    """BatchNorm statistics per test-time λ (key ``repr(λ)``; ``'auto'`` for the rule) on held-out images."""
    assert data.held_out is not None, "robust.run loads the held-out images for --recalibrate-bn"
    images = in_channels(data.held_out[0][:opts.recalibrate_bn], len(mean))
    x = to_input(images, mean, std)
    out = {repr(lm): recalibrated_stats(model, x, lm, opts.lmbd_layers, opts.batch_size, opts.device) for lm in grid}
    if fit is not None:
        lam, _ = auto_lambda(model, x, fit, None, None, opts.batch_size, opts.device)
        out["auto"] = recalibrated_stats(model, x, lam, fit.layers, opts.batch_size, opts.device)
    return out


def _condition_rows(model: nn.Module, x: torch.Tensor, labels: np.ndarray, opts: RobustOptions,
                    lambdas: list[float], lm_train: float | None, fit: LambdaFit | None,
                    stats: Stats | dict[str, Stats] | None, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one condition: the sweep, the training λ and the per-sample λ (with ``stats`` per λ if given)."""
    bs, dev, layers = opts.batch_size, opts.device, opts.lmbd_layers
    tag = {"bn": "recalibrated"} if stats is not None else {}
    pick = (lambda key: stats.get(key)) if isinstance(stats, dict) else (lambda key: None)  # noqa: E731
    rows = []
    for lm in lambdas:
        with using_bn_stats(model, pick(repr(float(lm)))):
            rows.append(_row("", 0, float(lm), sweep_lambdas(model, x, labels, [lm], layers, bs, dev)[0], "sweep",
                             **tag, **extra))
    same = [r for r in rows if lm_train is not None and np.isclose(r["lambda"], lm_train)]
    if same:
        rows.append({**same[0], "mode": "train", "lambda": lm_train})
    else:
        with using_bn_stats(model, pick(repr(lm_train))):
            rows.append(_row("", 0, lm_train, evaluate_tensor(model, x, labels, lm_train, layers, bs, dev), "train",
                             **tag, **extra))
    if fit is not None:
        lam, _ = auto_lambda(model, x, fit, None, labels, bs, dev)
        with using_bn_stats(model, pick("auto")):
            res = evaluate_tensor(model, x, labels, lam, fit.layers, bs, dev)
        rows.append(_row("", 0, float(lam.mean()), res, "auto", lambda_std=float(lam.std()), **tag, **extra))
    return rows


MIN_CACHED_IMAGES = 50_000  # corrupted images (5 severities × test set × corruptions) worth a cached set


def _generated(opts: RobustOptions, data: ModelData, levels: dict[str, tuple[int, ...]], channels: int,
               dataset: str | None, progress: Progress, label: str) -> Path | None:
    """The CIFAR-C protocol on the whole clean test set: its generated set, made in parallel or reused from
    ``<data root>/generated-c/`` (None: files given, another protocol, a subsample, fewer than
    :data:`MIN_CACHED_IMAGES` corrupted images, or no writable cache)."""
    if data.cifar_c_dir is not None or data.clean is None or opts.protocol != "cifar-c":
        return None
    if subsample(len(data.clean[1]), opts.max_images, opts.seed) is not None:
        return None
    if 5 * len(data.clean[1]) * len(levels) < MIN_CACHED_IMAGES:  # small sets: quicker made than read back
        return None
    root = opts.data_root if opts.data_root is not None else default_root(dataset or "")
    progress.start(f"{label}: generating corrupted test sets (or reusing them)", 5 * len(levels))
    try:
        return generate_cached(Path(root), levels, data.clean, opts.seed, channels, lambda *_: progress.advance())
    except OSError as e:
        data.notes.append(f"generated corruptions not cached ({e}); made in memory for this run")
        return None


def _corruption_rows(model: nn.Module, opts: RobustOptions, data: ModelData, mean: list[float], std: list[float],
                     lambdas: list[float], lm_train: float | None, fit: LambdaFit | None,
                     bn: dict[str, Stats] | None, progress: Progress, label: str,
                     dataset: str | None = None) -> list[dict[str, Any]]:
    levels = opts.levels()
    generated = _generated(opts, data, levels, len(mean), dataset, progress, label)
    n_cond = count_conditions(levels, data.cifar_c_dir, data.clean is not None)
    progress.start(f"{label}: {n_cond} conditions", n_cond)
    rows: list[dict[str, Any]] = []
    for cond in iter_conditions(levels, opts.protocol, data.clean, data.cifar_c_dir, opts.seed, opts.max_images,
                                len(mean), generated):
        x = to_input(cond.images, mean, std)
        extra = {"param": cond.param} if cond.param is not None else {}
        variants = [None] + ([bn] if bn is not None else [])
        for stats in variants:
            for r in _condition_rows(model, x, cond.labels, opts, lambdas, lm_train, fit, stats, extra):
                rows.append({**r, "corruption": cond.corruption, "severity": cond.severity})
        progress.advance()
    return rows


def run_model(model: nn.Module, config: ModelConfig, opts: RobustOptions, label: str, data: ModelData,
              progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on every condition and attack of ``opts`` (see the module doc)."""
    progress = progress or Silent()
    model = model.to(opts.device).eval().requires_grad_(False)
    mean, std = list(config.mean or [0.0] * 3), list(config.std or [1.0] * 3)
    has_csc = first_csc(model) is not None
    lm_train = training_lambda(config, model)
    lambdas = list(opts.lambdas) if has_csc else []
    notes = list(data.notes) + [f"{name}: {why}" for name, why in skipped(opts.corruption_names(),
                                                                           data.cifar_c_dir).items()]
    if not has_csc and (opts.lambdas or opts.wants_auto_lambda):
        notes.append("no CSC layer (plain ResNet): evaluated as is, without λ sweep or per-sample λ")
    fit = _fit(model, opts, data, mean, std, float(lm_train), progress, label) \
        if has_csc and opts.wants_auto_lambda else None
    if fit is not None and fit.fallback:
        notes.append(f"warning: per-sample λ {fit.fallback}")
    bn = _bn_stats(model, opts, data, mean, std, sorted(set(lambdas) | {lm_train}, key=lambda v: (v is None, v or 0)),
                   fit) if opts.recalibrate_bn else None
    rows = _corruption_rows(model, opts, data, mean, std, lambdas, lm_train, fit, bn, progress, label,
                            opts.dataset or config.dataset)
    checks: list[dict[str, Any]] = []
    if opts.attack and data.clean is not None:
        attack, checks = _attack(model, opts, data, mean, std, lambdas, lm_train, fit, progress, label)
        rows += attack
    report = {
        "model": label, "architecture": config.architecture, "dataset": config.dataset,
        "protocol": opts.protocol, "source": "cifar-c-files" if data.cifar_c_dir is not None else "generated",
        "training_lambda": lm_train, "lambda_layers": opts.lmbd_layers, "lambdas": lambdas, "seed": opts.seed,
        "held_out_images": data.held_out_source if (fit is not None and opts.lambda_fit is None) or bn else None,
        "results": rows, "summary": summarize(rows), "notes": notes,
    }
    if bn is not None:
        report["summary_bn"] = summarize([r for r in rows if r.get("bn") == "recalibrated"], include_bn=True)
        report["bn_recalibration"] = {"images": min(opts.recalibrate_bn, len(data.held_out[1])),
                                      "layers": "all BatchNorm layers", "source": data.held_out_source,
                                      "stats_sha256": {k: stats_digest(v) for k, v in bn.items()}}
    if checks:
        report["masking_checks"] = checks
    if fit is not None:
        report["lambda_fit"] = fit.to_dict()
    return report


def _attack(model: nn.Module, opts: RobustOptions, data: ModelData, mean: list[float], std: list[float],
            lambdas: list[float], lm_train: float | None, fit: LambdaFit | None, progress: Progress,
            label: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    assert data.clean is not None and opts.attack is not None
    idx = subsample(len(data.clean[1]), opts.max_images, opts.seed)
    images, labels = data.clean if idx is None else (data.clean[0][idx], data.clean[1][idx])
    pixels = to_pixels(in_channels(images, len(mean)), len(mean)).to(opts.device)
    y = torch.as_tensor(labels, dtype=torch.long, device=opts.device)
    frozen = None
    if fit is not None:
        frozen = torch.as_tensor(auto_lambda(model, to_input(in_channels(images, len(mean)), mean, std), fit, None,
                                             labels, opts.batch_size, opts.device)[0], dtype=torch.float32)
    tgts = targets(lm_train, lambdas, fit, pixels, frozen, opts.lmbd_layers, opts.attack)
    spec = AttackSpec(opts.attack, opts.norm, opts.steps, opts.step_size, opts.seed, opts.batch_size, opts.checks)
    progress.start(f"{label}: {opts.attack}", len(opts.eps) * len(tgts))
    return attack_rows(model, mean, std, pixels, y, list(opts.eps), spec, tgts, progress.advance)

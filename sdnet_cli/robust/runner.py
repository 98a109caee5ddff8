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
from .accuracy import AccuracyResult, tensor_accuracy, first_csc, sweep_lmbds, to_input, to_pixels
from .lmbd_fit import Calibration, LmbdFit, calibrate, per_sample_lmbd
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


def training_lmbd(config: ModelConfig, model: nn.Module) -> float | None:
    """The λ the model was trained with (``model_args['lmbd']``, default 0.1); None without CSC layers."""
    if first_csc(model) is None:
        return None
    return float(config.model_args.get("lmbd", 0.1))


def _row(cond: str, severity: int, lmbd: float | None, res: AccuracyResult, mode: str, **extra: Any) -> dict[str, Any]:
    row = {"corruption": cond, "severity": severity, "lambda": lmbd, "accuracy": res.accuracy,
           "recon_error": res.recon_error, "mode": mode, "n": int(len(res.correct))}
    row.update(extra)
    return row


@dataclass(frozen=True)
class ModelRun:
    """What every step of one model's run reads: the model (eval mode, on ``opts.device``), the options, its
    images, its input normalisation ``mean``/``std`` (one value per channel), where progress goes, its label
    and its dataset name."""

    model: nn.Module
    opts: RobustOptions
    data: ModelData
    mean: tuple[float, ...]
    std: tuple[float, ...]
    progress: Progress
    label: str
    dataset: str | None = None

    @property
    def channels(self) -> int:
        return len(self.mean)


@dataclass(frozen=True)
class LmbdChoices:
    """The test-time λ of a run: the ``sweep`` values, the model's ``train`` λ (None: no CSC layer) and the
    per-sample ``fit`` (None: off)."""

    sweep: tuple[float, ...]
    train: float | None
    fit: LmbdFit | None


def _fit(run: ModelRun, train_lmbd: float) -> LmbdFit:
    opts, data = run.opts, run.data
    if opts.lmbd_fit is not None:
        return LmbdFit.load(opts.lmbd_fit)
    assert data.held_out is not None, "robust.run loads the held-out images for --auto-lambda"
    grid = tuple(opts.lmbds) if len(opts.lmbds) >= 2 else tuple(round(0.1 * k, 1) for k in range(1, 15))
    idx = subsample(len(data.held_out[1]), opts.calib_images, opts.seed + 1)
    ci, cl = data.held_out if idx is None else (data.held_out[0][idx], data.held_out[1][idx])
    plan = Calibration(grid, train_lmbd, opts.lmbd_layers, seed=opts.seed, batch_size=opts.batch_size,
                       device=opts.device, split=data.held_out_source)
    run.progress.start(f"{run.label}: calibrating per-sample λ", len(plan.noises) * len(grid))
    return calibrate(model=run.model, images=in_channels(ci, run.channels), labels=cl, mean=run.mean, std=run.std,
                     plan=plan, on_step=run.progress.advance)


def _bn_stats(run: ModelRun, grid: list[float | None], fit: LmbdFit | None) -> dict[str, Stats]:
    """BatchNorm statistics per test-time λ (key ``repr(λ)``; ``'auto'`` for the rule) on held-out images."""
    opts, data, model = run.opts, run.data, run.model
    assert data.held_out is not None, "robust.run loads the held-out images for --recalibrate-bn"
    images = in_channels(data.held_out[0][:opts.recalibrate_bn], run.channels)
    x = to_input(images, run.mean, run.std)
    out = {repr(lmbd): recalibrated_stats(model, x, lmbd, opts.lmbd_layers, opts.batch_size, opts.device)
           for lmbd in grid}
    if fit is not None:
        sample_lmbd, _ = per_sample_lmbd(model, x, fit, None, None, opts.batch_size, opts.device)
        out["auto"] = recalibrated_stats(model, x, sample_lmbd, fit.layers, opts.batch_size, opts.device)
    return out


def _condition_rows(run: ModelRun, x: torch.Tensor, labels: np.ndarray, lmbds: LmbdChoices,
                    stats: Stats | dict[str, Stats] | None, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of one condition: the sweep, the training λ and the per-sample λ (with ``stats`` per λ if given)."""
    model, bs, dev, layers = run.model, run.opts.batch_size, run.opts.device, run.opts.lmbd_layers
    tag = {"bn": "recalibrated"} if stats is not None else {}
    pick = (lambda key: stats.get(key)) if isinstance(stats, dict) else (lambda key: None)  # noqa: E731
    rows = []
    for lmbd in lmbds.sweep:
        with using_bn_stats(model, pick(repr(float(lmbd)))):
            rows.append(_row("", 0, float(lmbd), sweep_lmbds(model, x, labels, [lmbd], layers, bs, dev)[0], "sweep",
                             **tag, **extra))
    same = [r for r in rows if lmbds.train is not None and np.isclose(r["lambda"], lmbds.train)]
    if same:
        rows.append({**same[0], "mode": "train", "lambda": lmbds.train})
    else:
        with using_bn_stats(model, pick(repr(lmbds.train))):
            res = tensor_accuracy(model, x, labels, lmbds.train, layers, bs, dev)
        rows.append(_row("", 0, lmbds.train, res, "train", **tag, **extra))
    if lmbds.fit is not None:
        sample_lmbd, _ = per_sample_lmbd(model, x, lmbds.fit, None, labels, bs, dev)
        with using_bn_stats(model, pick("auto")):
            res = tensor_accuracy(model, x, labels, sample_lmbd, lmbds.fit.layers, bs, dev)
        rows.append(_row("", 0, float(sample_lmbd.mean()), res, "auto", lambda_std=float(sample_lmbd.std()),
                         **tag, **extra))
    return rows


MIN_CACHED_IMAGES = 50_000  # corrupted images (5 severities × test set × corruptions) worth a cached set


def _generated(run: ModelRun, levels: dict[str, tuple[int, ...]]) -> Path | None:
    """The CIFAR-C protocol on the whole clean test set: its generated set, made in parallel or reused from
    ``<data root>/generated-c/`` (None: files given, another protocol, a subsample, fewer than
    :data:`MIN_CACHED_IMAGES` corrupted images, or no writable cache)."""
    opts, data = run.opts, run.data
    if data.cifar_c_dir is not None or data.clean is None or opts.protocol != "cifar-c":
        return None
    if subsample(len(data.clean[1]), opts.max_images, opts.seed) is not None:
        return None
    if 5 * len(data.clean[1]) * len(levels) < MIN_CACHED_IMAGES:  # small sets: quicker made than read back
        return None
    root = opts.data_root if opts.data_root is not None else default_root(run.dataset or "")
    run.progress.start(f"{run.label}: generating corrupted test sets (or reusing them)", 5 * len(levels))
    try:
        return generate_cached(Path(root), levels, data.clean, opts.seed, run.channels,
                               lambda *_: run.progress.advance())
    except OSError as e:
        data.notes.append(f"generated corruptions not cached ({e}); made in memory for this run")
        return None


def _corruption_rows(run: ModelRun, lmbds: LmbdChoices, bn: dict[str, Stats] | None) -> list[dict[str, Any]]:
    opts, data = run.opts, run.data
    levels = opts.levels()
    generated = _generated(run, levels)
    n_cond = count_conditions(levels, data.cifar_c_dir, data.clean is not None)
    run.progress.start(f"{run.label}: {n_cond} conditions", n_cond)
    rows: list[dict[str, Any]] = []
    for cond in iter_conditions(levels, opts.protocol, data.clean, data.cifar_c_dir, opts.seed, opts.max_images,
                                run.channels, generated):
        x = to_input(cond.images, run.mean, run.std)
        extra = {"param": cond.param} if cond.param is not None else {}
        variants = [None] + ([bn] if bn is not None else [])
        for stats in variants:
            for r in _condition_rows(run, x, cond.labels, lmbds, stats, extra):
                rows.append({**r, "corruption": cond.corruption, "severity": cond.severity})
        run.progress.advance()
    return rows


def run_model(model: nn.Module, config: ModelConfig, opts: RobustOptions, label: str, data: ModelData,
              progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate ``model`` on every condition and attack of ``opts`` (see the module doc)."""
    run = ModelRun(model.to(opts.device).eval().requires_grad_(False), opts, data,
                   tuple(config.mean or [0.0] * 3), tuple(config.std or [1.0] * 3), progress or Silent(), label,
                   opts.dataset or config.dataset)
    has_csc = first_csc(run.model) is not None
    train_lmbd = training_lmbd(config, run.model)
    notes = list(data.notes) + [f"{name}: {why}" for name, why in skipped(opts.corruption_names(),
                                                                           data.cifar_c_dir).items()]
    if not has_csc and (opts.lmbds or opts.wants_auto_lmbd):
        notes.append("no CSC layer (plain ResNet): evaluated as is, without λ sweep or per-sample λ")
    fit = _fit(run, float(train_lmbd)) if has_csc and opts.wants_auto_lmbd else None
    if fit is not None and fit.fallback:
        notes.append(f"warning: per-sample λ {fit.fallback}")
    lmbds = LmbdChoices(tuple(opts.lmbds) if has_csc else (), train_lmbd, fit)
    grid = sorted(set(lmbds.sweep) | {train_lmbd}, key=lambda v: (v is None, v or 0))
    bn = _bn_stats(run, grid, fit) if opts.recalibrate_bn else None
    rows = _corruption_rows(run, lmbds, bn)
    checks: list[dict[str, Any]] = []
    if opts.attack and data.clean is not None:
        attack, checks = _attack(run, lmbds)
        rows += attack
    report = {
        "model": label, "architecture": config.architecture, "dataset": config.dataset,
        "protocol": opts.protocol, "source": "cifar-c-files" if data.cifar_c_dir is not None else "generated",
        "training_lambda": train_lmbd, "lambda_layers": opts.lmbd_layers, "lambdas": list(lmbds.sweep),
        "seed": opts.seed,
        "held_out_images": data.held_out_source if (fit is not None and opts.lmbd_fit is None) or bn else None,
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


def _attack(run: ModelRun, lmbds: LmbdChoices) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    opts, data, model = run.opts, run.data, run.model
    assert data.clean is not None and opts.attack is not None
    idx = subsample(len(data.clean[1]), opts.max_images, opts.seed)
    images, labels = data.clean if idx is None else (data.clean[0][idx], data.clean[1][idx])
    pixels = to_pixels(in_channels(images, run.channels), run.channels).to(opts.device)
    y = torch.as_tensor(labels, dtype=torch.long, device=opts.device)
    frozen = None
    if lmbds.fit is not None:
        x = to_input(in_channels(images, run.channels), run.mean, run.std)
        frozen = torch.as_tensor(per_sample_lmbd(model, x, lmbds.fit, None, labels, opts.batch_size, opts.device)[0],
                                 dtype=torch.float32)
    tgts = targets(lmbds.train, list(lmbds.sweep), lmbds.fit, pixels, frozen, opts.lmbd_layers, opts.attack)
    spec = AttackSpec(opts.attack, opts.norm, opts.steps, opts.step_size, opts.seed, opts.batch_size, opts.checks)
    run.progress.start(f"{run.label}: {opts.attack}", len(opts.eps) * len(tgts))
    return attack_rows(model, list(run.mean), list(run.std), pixels, y, list(opts.eps), spec, tgts,
                       run.progress.advance)

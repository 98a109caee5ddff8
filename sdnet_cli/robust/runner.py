"""One robustness run of one model: corrupted test sets × test-time λ (+ per-sample λ, + PGD).

:func:`run_model` returns the ``results.json`` object ``{"model", "results": [rows], "summary", …}``.
Each row is one evaluation: ``corruption``, ``severity`` (0 = clean), ``lambda`` (None for a plain
ResNet; the mean λ for ``mode='auto'``), ``accuracy`` (%), ``recon_error`` (mean first-layer
``‖x − Dz‖²``), ``mode`` (``train`` = the model's training λ, ``sweep`` = one λ of ``--lambdas``,
``auto`` = per-sample λ from the fit) and ``n`` (images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
import torch.nn as nn

from ..models.files import ModelConfig
from .attacks import pgd_attack
from .conditions import count_conditions, iter_conditions, skipped, subsample
from .evaluate import EvalResult, evaluate_tensor, first_csc, lambda_override, sweep_lambdas, to_input, to_pixels
from .lambda_fit import DEFAULT_NOISES, LambdaFit, auto_lambda, calibrate
from .report import summarize
from ..errors import UsageError


class Progress(Protocol):
    """Where a run reports progress (the CLI passes a rich progress bar; the library never prints)."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


@dataclass
class RobustOptions:
    """What to evaluate (mirrors the ``sdnet robust`` flags)."""

    corruptions: list[str]
    severities: list[int] | None = None
    protocol: str = "cifar-c"
    cifar_c_dir: Path | None = None
    lambdas: list[float] | None = None
    lmbd_layers: str = "first"
    auto_lambda: bool = False
    lambda_fit: Path | None = None
    calib_images: int = 128
    attack: str | None = None
    eps: list[float] = field(default_factory=lambda: [8 / 255])
    steps: int = 10
    step_size: float | None = None
    seed: int = 0
    batch_size: int = 500
    max_images: int | None = None
    device: str = "cpu"


def training_lambda(config: ModelConfig, model: nn.Module) -> float | None:
    """The λ the model was trained with (``model_args['lmbd']``, default 0.1); None without CSC layers."""
    if first_csc(model) is None:
        return None
    return float(config.model_args.get("lmbd", 0.1))


def _row(cond_name: str, severity: int, lmbd: float | None, res: EvalResult, mode: str, **extra: Any) -> dict[str, Any]:
    row = {"corruption": cond_name, "severity": severity, "lambda": lmbd, "accuracy": res.accuracy,
           "recon_error": res.recon_error, "mode": mode, "n": int(len(res.correct))}
    row.update(extra)
    return row


def _find(lambdas: list[float], value: float | None) -> int | None:
    if value is None:
        return None
    hits = [i for i, v in enumerate(lambdas) if np.isclose(v, value)]
    return hits[0] if hits else None


def run_model(
    model: nn.Module,
    config: ModelConfig,
    opts: RobustOptions,
    label: str,
    clean: tuple[np.ndarray, np.ndarray] | None,
    calib: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress | None = None,
    fit_out: Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on every condition (clean first when ``clean`` is given); see the module doc.

    ``calib`` = clean training images for the per-sample λ fit (needed for ``auto_lambda`` without
    ``lambda_fit``); the fit is written to ``fit_out`` when given.
    """
    progress = progress or _Silent()
    model = model.to(opts.device).eval()
    if opts.device == "cpu":
        model = model.to(memory_format=torch.channels_last)  # ~20 % faster convolutions on CPU
    mean, std = list(config.mean or [0.0] * 3), list(config.std or [1.0] * 3)
    has_csc = first_csc(model) is not None
    lm_train = training_lambda(config, model)
    lambdas = list(opts.lambdas or []) if has_csc else []
    notes = [f"{name}: {why}" for name, why in skipped(opts.corruptions, opts.cifar_c_dir).items()]
    if not has_csc and (opts.lambdas or opts.auto_lambda):
        notes.append("no CSC layer (plain ResNet): evaluated as is, without λ sweep or per-sample λ")
    fit: LambdaFit | None = None
    bs, dev, layers = opts.batch_size, opts.device, opts.lmbd_layers

    if has_csc and opts.auto_lambda:
        if opts.lambda_fit is not None:
            fit = LambdaFit.load(opts.lambda_fit)
        else:
            if calib is None:
                raise UsageError("--auto-lambda needs clean training images to calibrate (or pass --lambda-fit FILE)")
            grid = lambdas if len(lambdas) >= 2 else [round(0.1 * k, 1) for k in range(1, 15)]
            idx = subsample(len(calib[1]), opts.calib_images, opts.seed + 1)
            ci, cl = calib if idx is None else (calib[0][idx], calib[1][idx])
            progress.start(f"{label}: calibrating per-sample λ", len(DEFAULT_NOISES) * len(grid))
            fit = calibrate(model, ci, cl, mean, std, grid, float(lm_train), layers, seed=opts.seed,
                            batch_size=bs, device=dev, on_step=progress.advance)
            if fit_out is not None:
                fit.save(fit_out)

    n_cond = count_conditions(opts.corruptions, opts.severities, opts.protocol, opts.cifar_c_dir, clean is not None)
    extra_train = 0 if _find(lambdas, lm_train) is not None else 1
    per_cond = max(len(lambdas), 0) + extra_train + (1 if fit is not None else 0)
    progress.start(f"{label}: {n_cond} conditions", n_cond * per_cond)
    rows: list[dict[str, Any]] = []
    for cond in iter_conditions(opts.corruptions, opts.severities, opts.protocol, clean, opts.cifar_c_dir,
                                opts.seed, opts.max_images):
        x = to_input(cond.images, mean, std)
        extra = {"param": cond.param} if cond.param is not None else {}
        sweep = sweep_lambdas(model, x, cond.labels, lambdas, layers, bs, dev, progress.advance) if lambdas else []
        for lm, res in zip(lambdas, sweep):
            rows.append(_row(cond.corruption, cond.severity, float(lm), res, "sweep", **extra))
        k = _find(lambdas, lm_train)
        if k is not None:
            train_res = sweep[k]
        else:
            train_res = evaluate_tensor(model, x, cond.labels, lm_train, layers, bs, dev)
            progress.advance()
        rows.append(_row(cond.corruption, cond.severity, lm_train, train_res, "train", **extra))
        if fit is not None:
            k = _find(lambdas, fit.probe_lmbd)
            probe = sweep[k].recon if k is not None else (
                train_res.recon if lm_train is not None and np.isclose(lm_train, fit.probe_lmbd) else None)
            lam, _ = auto_lambda(model, x, fit, probe, cond.labels, bs, dev)
            res = evaluate_tensor(model, x, cond.labels, lam, fit.layers, bs, dev)
            progress.advance()
            rows.append(_row(cond.corruption, cond.severity, float(lam.mean()), res, "auto",
                             lambda_std=float(lam.std()), **extra))
    if opts.attack and clean is not None:
        rows.extend(run_attack(model, clean, mean, std, opts, lambdas, lm_train, label, progress))
    report = {
        "model": label,
        "architecture": config.architecture,
        "dataset": config.dataset,
        "protocol": opts.protocol,
        "source": "cifar-c-files" if opts.cifar_c_dir is not None else "generated",
        "training_lambda": lm_train,
        "lambda_layers": layers,
        "lambdas": lambdas,
        "seed": opts.seed,
        "results": rows,
        "summary": summarize(rows),
        "notes": notes,
    }
    if fit is not None:
        report["lambda_fit"] = fit.to_dict()
    return report


def run_attack(
    model: nn.Module,
    clean: tuple[np.ndarray, np.ndarray],
    mean: list[float],
    std: list[float],
    opts: RobustOptions,
    lambdas: list[float],
    lm_train: float | None,
    label: str,
    progress: Progress,
) -> list[dict[str, Any]]:
    """PGD at each ε, against and evaluated at each λ (white-box: the attack sees the λ it is tested at)."""
    idx = subsample(len(clean[1]), opts.max_images, opts.seed)
    images, labels = clean if idx is None else (clean[0][idx], clean[1][idx])
    grid: list[tuple[float | None, str]] = [(lm, "sweep") for lm in lambdas]
    if _find(lambdas, lm_train) is None:
        grid.append((lm_train, "train"))
    progress.start(f"{label}: {opts.attack}", len(opts.eps) * len(grid))
    pixels = to_pixels(images, len(mean))
    y = torch.as_tensor(labels, dtype=torch.long)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    rows = []
    for eps in opts.eps:
        for lm, mode in grid:
            gen = torch.Generator().manual_seed(opts.seed)
            adv = []
            with lambda_override(model, lm, opts.lmbd_layers):
                for i in range(0, len(y), opts.batch_size):
                    xb, yb = pixels[i:i + opts.batch_size].to(opts.device), y[i:i + opts.batch_size].to(opts.device)
                    adv.append(pgd_attack(model, xb, yb, mean, std, eps, opts.steps, opts.step_size, opts.attack, gen).cpu())
            x_adv = (torch.cat(adv) - m) / s
            res = evaluate_tensor(model, x_adv, labels, lm, opts.lmbd_layers, opts.batch_size, opts.device)
            extra = {"eps": float(eps), "steps": opts.steps}
            rows.append(_row(opts.attack, 0, lm, res, mode, **extra))
            if mode == "sweep" and lm_train is not None and np.isclose(lm, lm_train):
                rows.append(_row(opts.attack, 0, lm, res, "train", **extra))
            progress.advance()
    return rows

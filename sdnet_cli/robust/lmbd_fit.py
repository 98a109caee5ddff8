"""Per-sample test-time λ from the first layer's reconstruction error (the SDNet paper's procedure).

Calibration, on clean images held out from training (the model's validation split) with synthetic noise
in the model's channel space (:data:`DEFAULT_NOISES`: none, five Gaussian, four salt-and-pepper and three
shot-noise levels): for each noise, sweep λ over
the grid ``Calibration.lmbds`` and take the best λ (highest accuracy, ties → lower mean cross-entropy); record
the mean reconstruction error ``r = ‖x − Dz‖²`` of the first CSC layer measured at the *probe* λ (the
training λ). A least-squares line ``λ* ≈ a·r + b`` through the (r, best λ) points is the fit. At test
time each sample is coded once at the probe λ, its ``rᵢ`` gives ``λᵢ = clip(a·rᵢ + b, λ_min, λ_max)``,
and the model is run again with that per-sample λ. (The official script plots the best λ against the
error measured *at* the best λ; measuring at the probe λ is what makes the rule usable before λ is
chosen.)

The fit's quality is recorded (``R²``, residuals of the best λ, their RMS), and a fit that is not
informative — fewer than three distinct r, r not growing with the noise, a slope ≤ 0, a constant best λ,
or ``R² < MIN_R2`` — is replaced by the training λ (slope 0) with the reason in ``fallback``. The fit is
stored as ``lambda_fit.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..data.corruptions.noise import PARAM_FUNCS
from ..fsio import atomic_write_json
from .accuracy import best_index, tensor_accuracy, sweep_lmbds, to_input
from ..errors import MissingFileError, UsageError

FIT_FORMAT = "sdnet-lambda-fit"
DEFAULT_NOISES: tuple[tuple[str, float], ...] = (
    ("clean", 0.0),
    ("gaussian_noise", 0.04), ("gaussian_noise", 0.08), ("gaussian_noise", 0.12), ("gaussian_noise", 0.16),
    ("gaussian_noise", 0.2),
    ("impulse_noise", 0.03), ("impulse_noise", 0.09), ("impulse_noise", 0.15), ("impulse_noise", 0.24),
    ("shot_noise", 60.0), ("shot_noise", 24.0), ("shot_noise", 6.0),
)
MIN_R2 = 0.3


@dataclass
class LmbdFit:
    """``λ(r) = clip(slope·r + intercept, lmbd_min, lmbd_max)`` with ``r`` measured at ``probe_lmbd``."""

    slope: float
    intercept: float
    probe_lmbd: float
    lmbd_min: float
    lmbd_max: float
    layers: str = "first"
    points: list[dict[str, float]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    fallback: str | None = None

    def predict(self, recon: np.ndarray | float) -> np.ndarray:
        """Per-sample λ for reconstruction errors ``recon`` ``(N,)``."""
        lmbd = self.slope * np.asarray(recon, dtype=np.float64) + self.intercept
        return np.clip(lmbd, self.lmbd_min, self.lmbd_max)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FIT_FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write ``lambda_fit.json`` atomically."""
        atomic_write_json(Path(path), self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "LmbdFit":
        """Read a fit written by :meth:`save`; a missing or malformed file is a clear error."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"λ fit {path} not found (write one with --auto-lambda, it is saved as lambda_fit.json)")
        try:
            d = json.loads(path.read_text())
            if d.get("format") != FIT_FORMAT:
                raise KeyError("format")
            fit = cls(**{k: v for k, v in d.items() if k != "format"})
            for name in ("slope", "intercept", "probe_lmbd", "lmbd_min", "lmbd_max"):
                if not np.isfinite(float(getattr(fit, name))):
                    raise UsageError(name)
            _check_parts(fit)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"{path} is not an sdnet lambda_fit.json ({type(e).__name__}: {e})") from None
        return fit


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_parts(fit: LmbdFit) -> None:
    """The descriptive fields of a loaded fit have the types the report and plots read (else a TypeError)."""
    if not isinstance(fit.layers, str) or not (fit.fallback is None or isinstance(fit.fallback, str)):
        raise TypeError("layers must be a string and fallback a string or null")
    if not isinstance(fit.calibration, dict) or not isinstance(fit.quality, dict):
        raise TypeError("calibration and quality must be objects")
    if fit.quality and not all(_number(fit.quality.get(k)) for k in ("r2", "rms_residual")):
        raise TypeError("quality must hold numbers r2 and rms_residual")
    if not isinstance(fit.points, list) or not all(
            isinstance(p, dict) and _number(p.get("recon_error")) and _number(p.get("best_lambda")) for p in fit.points):
        raise TypeError("points must be a list of objects with numbers recon_error and best_lambda")


def fit_line(recon: Sequence[float], best: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``best ≈ slope·recon + intercept`` (slope 0 if r is constant)."""
    r, b = np.asarray(recon, dtype=np.float64), np.asarray(best, dtype=np.float64)
    if len(r) < 2 or np.ptp(r) == 0:
        return 0.0, float(b.mean())
    slope, intercept = np.polyfit(r, b, 1)
    return float(slope), float(intercept)


def fit_quality(recon: Sequence[float], best: Sequence[float], slope: float, intercept: float) -> dict[str, Any]:
    """``R²`` of ``best ≈ slope·recon + intercept``, the residuals ``best − prediction`` and their RMS."""
    r, b = np.asarray(recon, dtype=np.float64), np.asarray(best, dtype=np.float64)
    resid = b - (slope * r + intercept)
    total = float(((b - b.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / total if len(b) and np.ptp(b) > 1e-9 else 0.0  # constant λ*: nothing explained
    return {"r2": r2, "rms_residual": float(np.sqrt((resid ** 2).mean())) if len(b) else 0.0,
            "residuals": [float(v) for v in resid], "points": int(len(b))}


def not_informative(points: Sequence[dict[str, Any]], slope: float, r2: float) -> str | None:
    """Why a fit through ``points`` cannot pick λ from r (None when it can; see the module doc)."""
    r = np.array([p["recon_error"] for p in points], dtype=np.float64)
    best = np.array([p["best_lambda"] for p in points], dtype=np.float64)
    clean = [p["recon_error"] for p in points if p["noise"] == "clean"]
    if len(np.unique(np.round(r, 12))) < 3:
        return "fewer than three distinct reconstruction errors"
    if clean and not all(p["recon_error"] > clean[0] for p in points if p["noise"] != "clean"):
        return "the reconstruction error does not grow with the noise"
    if np.ptp(best) == 0:
        return f"the best λ is {best[0]:g} at every noise level"
    if slope <= 0:
        return f"the best λ does not grow with the reconstruction error (slope {slope:.3g})"
    if r2 < MIN_R2:
        return f"the line explains too little of the best λ (R² {r2:.2f} < {MIN_R2})"
    return None


@dataclass(frozen=True)
class Calibration:
    """How :func:`calibrate` fits the rule: the λ grid ``lmbds`` swept at each noise, the ``probe_lmbd`` the
    error ``r`` is measured at (the training λ), which CSC ``layers`` take λ, the ``noises`` (``(name,
    parameter)`` pairs of :data:`~sdnet_cli.data.corruptions.noise.PARAM_FUNCS`, ``("clean", 0)`` for none),
    the noise ``seed``, the ``batch_size``, the ``device`` and the ``split`` the images come from."""

    lmbds: Sequence[float]
    probe_lmbd: float
    layers: str = "first"
    noises: Sequence[tuple[str, float]] = DEFAULT_NOISES
    seed: int = 0
    batch_size: int = 500
    device: str | torch.device = "cpu"
    split: str = "validation"


def _point(model: nn.Module, images: np.ndarray, labels: np.ndarray, mean: Sequence[float], std: Sequence[float],
           plan: Calibration, noise: tuple[str, float], rng: np.random.Generator,
           on_step: Callable[[], None] | None) -> dict[str, Any]:
    """One calibration point: the best λ of the sweep under ``noise`` and ``r`` measured at the probe λ."""
    name, param = noise
    if name != "clean" and name not in PARAM_FUNCS:
        raise UsageError(f"unknown calibration noise {name!r}; valid: clean, {', '.join(PARAM_FUNCS)}")
    noisy = images if name == "clean" else PARAM_FUNCS[name](images, param, rng)
    x = to_input(noisy, mean, std)
    lmbds, probe_lmbd, bs, dev = plan.lmbds, plan.probe_lmbd, plan.batch_size, plan.device
    results = sweep_lmbds(model, x, labels, lmbds, plan.layers, bs, dev, on_step)
    same = [i for i, lmbd in enumerate(lmbds) if np.isclose(lmbd, probe_lmbd)]
    probe = results[same[0]] if same else tensor_accuracy(model, x, labels, probe_lmbd, plan.layers, bs, dev)
    k = best_index(results)
    return {"noise": name, "param": float(param), "recon_error": float(probe.recon_error or 0.0),
            "best_lambda": float(lmbds[k]), "best_accuracy": results[k].accuracy, "probe_accuracy": probe.accuracy}


def calibrate(model: nn.Module, images: np.ndarray, labels: np.ndarray, mean: Sequence[float], std: Sequence[float],
              plan: Calibration, on_step: Callable[[], None] | None = None) -> LmbdFit:
    """Fit ``λ* ≈ a·r + b`` on clean uint8 ``images`` ``(N, H, W, C)`` with labels ``(N,)``, normalised by
    ``mean``/``std``, under ``plan`` (see the module doc).

    ``on_step`` is called after each of the ``len(plan.noises)·len(plan.lmbds)`` evaluations. An uninformative
    fit falls back to ``plan.probe_lmbd``.
    """
    if len(plan.lmbds) < 2:
        raise UsageError("--auto-lambda needs at least two λ values in --lambdas to calibrate")
    rng = np.random.default_rng(plan.seed)
    points = [_point(model, images, labels, mean, std, plan, noise, rng, on_step) for noise in plan.noises]
    r, best = [p["recon_error"] for p in points], [p["best_lambda"] for p in points]
    slope, intercept = fit_line(r, best)
    quality = fit_quality(r, best, slope, intercept)
    reason = not_informative(points, slope, quality["r2"])
    probe_lmbd = float(plan.probe_lmbd)
    low, high = float(min(plan.lmbds)), float(max(plan.lmbds))
    if reason is not None:
        slope, intercept, low, high = 0.0, probe_lmbd, min(low, probe_lmbd), max(high, probe_lmbd)
    calibration = {"images": int(len(images)), "split": plan.split,
                   "noises": [[n, float(p)] for n, p in plan.noises],
                   "lambdas": [float(v) for v in plan.lmbds], "seed": int(plan.seed)}
    fallback = None if reason is None else \
        f"fit not informative ({reason}): using the training λ {plan.probe_lmbd:g} for every sample"
    return LmbdFit(slope, intercept, probe_lmbd, low, high, plan.layers, points, calibration, quality, fallback)


def per_sample_lmbd(
    model: nn.Module,
    x: torch.Tensor,
    fit: LmbdFit,
    probe: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``(λ (N,), r (N,))`` for normalised ``x``; ``probe`` = errors already measured at ``fit.probe_lmbd``."""
    if probe is None:
        dummy = np.zeros(len(x), dtype=np.int64) if labels is None else labels
        probe = tensor_accuracy(model, x, dummy, fit.probe_lmbd, fit.layers, batch_size, device).recon
    if probe is None:
        raise UsageError("per-sample λ needs a model with a CSC layer (an SDNet), not a plain ResNet")
    return fit.predict(probe), probe

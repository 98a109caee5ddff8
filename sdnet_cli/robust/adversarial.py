"""Adversarial rows of a robustness run: every attack, at every ε, against every defence, with masking checks.

A *defence* is how the model picks its test-time λ: the training λ, a λ of the sweep (PGD/FGSM only), or
the per-sample λ rule. The rule is attacked twice: **non-adaptive** (the attack sees λ frozen at its
clean-image value) and **adaptive** (the attack differentiates through the rule, see
:mod:`~sdnet_cli.robust.attacked`). Adversarial images are always *scored* by the defence as it runs
at test time (the rule recomputed on the adversarial image). Robust accuracy is RobustBench-style: the
percentage of images still classified correctly (clean accuracy is the ε = 0 row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .attacked import AdaptiveRule, AttackedModel, Defence, FixedLmbd, FrozenRule
from .attacks import NORMS, fgsm_attack, pgd_attack
from .autoattack import is_available, run_library_attack
from .lmbd_fit import LmbdFit
from .masking import LARGE_EPS, all_passed, masking_checks


@dataclass(frozen=True)
class Target:
    """One defence under attack: ``attacked`` is what the attack sees, ``scoring`` what scores its images."""

    mode: str                # train | sweep | auto
    lmbd: float | None       # the λ (the mean λ on clean images for the rule)
    attacked: Defence
    scoring: Defence
    adaptive: bool | None    # None for a fixed λ
    check: bool              # run the masking checks for it


@dataclass(frozen=True)
class AttackSpec:
    """The attack to run: ``name`` (see :data:`~sdnet_cli.robust.attacks.ATTACKS`) and its threat model
    ``norm`` (linf | l2; PGD's and FGSM's follow from their name)."""

    name: str
    norm: str
    steps: int
    step_size: float | None
    seed: int
    batch_size: int
    checks: bool

    def __post_init__(self) -> None:
        own = {"pgd-l2": "l2", "pgd-linf": "linf", "fgsm": "linf"}.get(self.name)
        object.__setattr__(self, "norm", own or self.norm)


def _batched(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor, bs: int) -> Tensor:
    return torch.cat([fn(x[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)])


@torch.no_grad()
def correct_under(model: nn.Module, pixels: Tensor, labels: Tensor, bs: int) -> np.ndarray:
    """Per-image ``argmax model(u) == y`` (bool ``(N,)``)."""
    return torch.cat([model(pixels[i:i + bs]).argmax(1) == labels[i:i + bs]
                      for i in range(0, len(labels), bs)]).cpu().numpy()


def craft(model: nn.Module, pixels: Tensor, labels: Tensor, name: str, eps: float, spec: AttackSpec,
          steps: int | None = None, restart: int = 0) -> tuple[Tensor, list[str]]:
    """Adversarial pixels of attack ``name`` at ``eps`` and the library's warnings (none for ours)."""
    norm = spec.norm
    if name in ("fgsm", "single-step"):
        return _batched(lambda x, y: pgd_attack(model, x, y, eps, 1, eps, "pgd-" + norm, None, False)
                        if norm == "l2" else fgsm_attack(model, x, y, eps), pixels, labels, spec.batch_size), []
    if name in NORMS or name == "pgd":
        gen = torch.Generator().manual_seed(spec.seed + 7919 * restart)
        return _batched(lambda x, y: pgd_attack(model, x, y, eps, steps or spec.steps, spec.step_size,
                                                "pgd-" + norm, gen), pixels, labels, spec.batch_size), []
    return run_library_attack(model, pixels, labels, name, eps, norm, spec.seed, spec.batch_size,
                              square_queries=1000 if name == "square" and not spec.name == "square" else None)


def _large_eps(norm: str, pixels: Tensor) -> float:
    return LARGE_EPS if norm == "linf" else LARGE_EPS * math.sqrt(pixels[0].numel())


def run_checks(attacked: nn.Module, scoring: nn.Module, pixels: Tensor, labels: Tensor, eps: float,
               spec: AttackSpec, attack_acc: float) -> dict[str, Any]:
    """The gradient-masking checks (:mod:`~sdnet_cli.robust.masking`) for one defence at ``eps``."""
    norm, bs = spec.norm, spec.batch_size

    def acc(name: str, e: float, steps: int | None = None, restart: int = 0) -> np.ndarray:
        return correct_under(scoring, craft(attacked, pixels, labels, name, e, spec, steps, restart)[0], labels, bs)

    pgd = acc("pgd", eps)
    more = acc("pgd", eps, 4 * spec.steps, 1) & acc("pgd", eps, 4 * spec.steps, 2)
    values = {"pgd": 100 * pgd.mean(), "pgd_more": 100 * more.mean(), "fgsm": 100 * acc("single-step", eps).mean(),
              "large_eps": 100 * acc("pgd", _large_eps(norm, pixels)).mean()}
    notes = []
    if is_available():
        values["square"] = 100 * acc("square", eps).mean()
    else:
        values["square"] = float("inf")
        notes.append("black_box check skipped: Square needs the 'attacks' extra (pyautoattack)")
    if spec.name in ("apgd-ce", "apgd-dlr"):
        values["white_box"] = attack_acc
    checks = masking_checks({k: float(v) for k, v in values.items()}, len(labels))
    if not is_available():
        checks = [c for c in checks if c.name != "black_box"]
    return {"eps": float(eps), "accuracies": {k: float(v) for k, v in values.items() if math.isfinite(v)},
            "checks": [c.to_dict() for c in checks], "passed": all_passed(checks), "notes": notes}


def targets(train_lmbd: float | None, lmbds: list[float], fit: LmbdFit | None, clean: Tensor,
            frozen_lmbd: Tensor | None, layers: str, name: str) -> list[Target]:
    """The defences to attack: the training λ, the sweep (our PGD/FGSM only), and the rule twice."""
    out = [Target("train", train_lmbd, FixedLmbd(train_lmbd, layers), FixedLmbd(train_lmbd, layers), None, True)]
    if name in NORMS + ("fgsm",):
        out += [Target("sweep", float(lmbd), FixedLmbd(float(lmbd), layers), FixedLmbd(float(lmbd), layers), None, False)
                for lmbd in lmbds if train_lmbd is None or not np.isclose(lmbd, train_lmbd)]
    if fit is not None and frozen_lmbd is not None:
        mean = float(frozen_lmbd.mean())
        out.append(Target("auto", mean, FrozenRule(clean, frozen_lmbd, fit.layers), AdaptiveRule(fit), False, False))
        out.append(Target("auto", mean, AdaptiveRule(fit), AdaptiveRule(fit), True, True))
    return out


def attack_rows(model: nn.Module, mean: list[float], std: list[float], pixels: Tensor, labels: Tensor,
                eps_values: list[float], spec: AttackSpec, tgts: list[Target],
                on_step: Callable[[], None] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(rows, checks)``: one row per (ε, target); the masking checks per (ε > 0, target with ``check``)."""
    rows, checks = [], []
    for eps in eps_values:
        for t in tgts:
            attacked = AttackedModel(model, mean, std, t.attacked)
            scoring = AttackedModel(model, mean, std, t.scoring)
            adv, warnings = craft(attacked, pixels, labels, spec.name, eps, spec)
            ok = correct_under(scoring, adv, labels, spec.batch_size)
            row = {"corruption": spec.name, "severity": 0, "lambda": t.lmbd, "accuracy": 100.0 * float(ok.mean()),
                   "recon_error": None, "mode": t.mode, "n": int(len(ok)), "eps": float(eps), "norm": spec.norm, "steps": spec.steps if spec.name in NORMS else None,
                   "adaptive": t.adaptive}
            if warnings:
                row["library_warnings"] = warnings
            rows.append(row)
            if spec.checks and t.check and eps > 0:
                c = run_checks(attacked, scoring, pixels, labels, eps, spec, row["accuracy"])
                checks.append({"mode": t.mode, "lambda": t.lmbd, "adaptive": t.adaptive, **c})
            if on_step:
                on_step()
    return rows, checks

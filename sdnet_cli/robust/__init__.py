"""Robustness: corrupted test sets, test-time λ (sweep and per-sample), PGD attacks, reports."""

from .attacks import pgd_attack
from .evaluate import EvalResult, evaluate
from .lambda_fit import LambdaFit, calibrate
from .runner import RobustOptions, run_model

__all__ = ["EvalResult", "LambdaFit", "RobustOptions", "calibrate", "evaluate", "pgd_attack", "run_model"]

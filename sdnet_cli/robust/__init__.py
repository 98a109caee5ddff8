"""Robustness: corrupted test sets, test-time λ (sweep, per-sample rule, BatchNorm re-estimation), standard
and adaptive attacks with gradient-masking checks, reports. :func:`run` is what ``sdnet robust`` calls."""

from .attacks import fgsm_attack, pgd_attack
from .evaluate import EvalResult, evaluate_images
from .lambda_fit import Calibration, LambdaFit, calibrate
from .options import DEFAULT_LAMBDA_SPEC, RobustOptions, parse_lambdas
from .run import RobustReport, run
from .runner import ModelData, run_model

__all__ = ["Calibration", "DEFAULT_LAMBDA_SPEC", "EvalResult", "LambdaFit", "ModelData", "RobustOptions",
           "RobustReport", "calibrate", "evaluate_images", "fgsm_attack", "parse_lambdas", "pgd_attack", "run", "run_model"]

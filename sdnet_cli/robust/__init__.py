"""Robustness: corrupted test sets, test-time λ (sweep, per-sample rule, BatchNorm re-estimation), standard
and adaptive attacks with gradient-masking checks, reports. :func:`run` is what ``sdnet robust`` calls."""

from typing import Any

from ..deprecations import deprecated_attribute
from .accuracy import AccuracyResult, images_accuracy
from .attacks import fgsm_attack, pgd_attack
from .lmbd_fit import Calibration, LmbdFit, calibrate
from .options import DEFAULT_LMBD_SPEC, RobustOptions, parse_lmbds
from .run import RobustReport, run
from .runner import ModelData, run_model

__all__ = ["AccuracyResult", "Calibration", "DEFAULT_LMBD_SPEC", "LmbdFit", "ModelData", "RobustOptions",
           "RobustReport", "calibrate", "images_accuracy", "fgsm_attack", "parse_lmbds", "pgd_attack", "run",
           "run_model"]

# old public name -> (new name, the object); each old name warns once per process when it is first used
_DEPRECATED: dict[str, tuple[str, Any]] = {
    "LambdaFit": ("LmbdFit", LmbdFit),
    "parse_lambdas": ("parse_lmbds", parse_lmbds),
    "DEFAULT_LAMBDA_SPEC": ("DEFAULT_LMBD_SPEC", DEFAULT_LMBD_SPEC),
    "evaluate_images": ("images_accuracy", images_accuracy),
    "EvalResult": ("AccuracyResult", AccuracyResult),
}


def __getattr__(name: str) -> Any:
    return deprecated_attribute(__name__, _DEPRECATED, name)

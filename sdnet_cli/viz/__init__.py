"""Interpretability: dictionary atoms, decoded hidden features, sparsity, FISTA convergence, λ effects.

Library functions return tensors, arrays and dicts; :func:`visualize` turns them into PNGs, JSON and an
``index.html``; :func:`run` (``sdnet visualize``) loads the model and data and replaces the output folder whole.
Plots use matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

from typing import Any

from ..deprecations import deprecated_attribute
from .convergence import fista_iterates, objective_curve
from .data import VizBatch, load_batch
from .dictionary import atom_usage, dictionary_grid
from .display import denormalize, hist_equalize, minmax
from .inversion import decode_single_layer, default_points, inverse_batchnorm, invert_features, stack_ops
from .lmbds import lmbd_sweep, psnr
from .probe import CodeRecord, csc_io
from .report import WHAT, FigureOptions, parse_what, visualize
from .run import VisualizeOptions, VisualizeReport, run
from .sparsity import sparsity_stats

__all__ = [
    "WHAT", "CodeRecord", "FigureOptions", "VizBatch", "load_batch", "atom_usage", "csc_io", "decode_single_layer",
    "default_points", "denormalize", "dictionary_grid", "fista_iterates", "hist_equalize", "inverse_batchnorm",
    "invert_features", "lmbd_sweep", "minmax", "objective_curve", "parse_what", "psnr", "sparsity_stats",
    "stack_ops", "visualize", "VisualizeOptions", "VisualizeReport", "run",
]

# old public name -> (new name, the object); each old name warns once per process when it is first used
_DEPRECATED: dict[str, tuple[str, Any]] = {
    "VizOptions": ("FigureOptions", FigureOptions),
    "lambda_sweep": ("lmbd_sweep", lmbd_sweep),
}


def __getattr__(name: str) -> Any:
    return deprecated_attribute(__name__, _DEPRECATED, name)

"""``sdnet bench``: side-by-side speed and memory of models (interleaved timing, medians, peak memory).

The library call is :func:`run` (``BenchOptions -> BenchReport``); the CLI only parses flags and renders.
"""

from .options import DEFAULT_MODELS, BenchOptions, parse_models
from .report import BenchReport, BenchRow
from .runner import machine_name, run
from .step import Workload, build_step

__all__ = ["DEFAULT_MODELS", "BenchOptions", "BenchReport", "BenchRow", "Workload", "build_step", "machine_name",
           "parse_models", "run"]

"""``sdnet bench``: side-by-side speed and memory of models (interleaved timing, medians, peak memory)."""

from .runner import DEFAULT_MODELS, machine_name, parse_models, run_bench
from .step import Workload, build_step

__all__ = ["DEFAULT_MODELS", "Workload", "build_step", "machine_name", "parse_models", "run_bench"]

"""Sparse coding layers: pure math in :mod:`functional`, modules in :mod:`csc`."""

from .csc import (CSCConv2d, SparseCodingLinear, converge_step_sizes, csc_layers, set_lmbd, track_step_sizes,
                  update_step_sizes)

__all__ = ["CSCConv2d", "SparseCodingLinear", "converge_step_sizes", "csc_layers", "set_lmbd", "track_step_sizes",
           "update_step_sizes"]

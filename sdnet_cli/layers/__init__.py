"""Sparse coding layers: pure math in :mod:`functional`, modules in :mod:`csc`."""

from .csc import CSCConv2d, SparseCodingLinear, csc_layers, set_lmbd, update_step_sizes

__all__ = ["CSCConv2d", "SparseCodingLinear", "csc_layers", "set_lmbd", "update_step_sizes"]

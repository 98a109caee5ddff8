"""Sparse coding layers: pure math in :mod:`functional` (FISTA, ``D z``) and :mod:`spectral` (the step size's
``L``), the shared base in :mod:`sparse_coding` (atoms and the step-size lifecycle), modules in :mod:`csc`
(``CSCConv2d``) and :mod:`linear`, and what applies to a whole model in :mod:`model_ops`."""

from .csc import CSCConv2d
from .linear import SparseCodingLinear
from .model_ops import (converge_step_sizes, csc_layers, named_csc_layers, set_lmbd, track_step_sizes,
                        update_step_sizes)

__all__ = ["CSCConv2d", "SparseCodingLinear", "converge_step_sizes", "csc_layers", "named_csc_layers", "set_lmbd",
           "track_step_sizes"]
# update_step_sizes: the deprecated name of converge_step_sizes (warns once), importable, not in __all__

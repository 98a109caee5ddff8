"""sdnet: sparse convolutional models (SDNet, NeurIPS 2022) for PyTorch.

>>> import sdnet_cli as sd
>>> m = sd.create_model("sdnet18", num_classes=10, stem="cifar")
"""

from ._version import __version__  # noqa: E402

from .layers import (CSCConv2d, SparseCodingLinear, converge_step_sizes, csc_layers, set_lmbd,  # noqa: E402
                     track_step_sizes, update_step_sizes)
from .models import ModelConfig, create_model, list_models, save_model  # noqa: E402
from .hub.resolve import load_model  # noqa: E402
from .conversion import ConversionReport, convert, plan_conversion  # noqa: E402

__all__ = [
    "__version__",
    "CSCConv2d",
    "ConversionReport",
    "SparseCodingLinear",
    "ModelConfig",
    "create_model",
    "converge_step_sizes",
    "csc_layers",
    "convert",
    "list_models",
    "load_model",
    "plan_conversion",
    "save_model",
    "set_lmbd",
    "track_step_sizes",
    "update_step_sizes",
]

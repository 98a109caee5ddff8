"""``load_model(src)``: a run dir, a model dir, a zoo name or a Hub repo ``org/repo[@rev]``.

Local paths are resolved by :func:`sdnet_cli.models.load.local_model_dir`; anything else is pulled into
the Hub cache by :func:`sdnet_cli.hub.puller.pull` (bounded, verified). The dependency runs one way:
``hub`` builds on ``models``, never the reverse.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..models.files import ModelConfig, load_model_dir
from ..models.load import local_model_dir
from .puller import PullOptions, pull


def resolve_model_dir(src: str | Path) -> Path:
    """The local model directory ``src`` names; zoo names and Hub repos are pulled through the Hub cache."""
    local = local_model_dir(src)
    if local is not None:
        return local
    return Path(pull(PullOptions(str(src))).path)


def load_model_with_config(src: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Like :func:`load_model`, also returning the model's :class:`~sdnet_cli.models.files.ModelConfig`."""
    return load_model_dir(resolve_model_dir(src), map_location)


def load_model(src: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a model in eval mode from a run dir, model dir, zoo name or ``org/repo[@rev]``."""
    return load_model_with_config(src, map_location)[0]

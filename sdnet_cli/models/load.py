"""``load_model(src)``: a run dir, a model dir, a zoo name or a Hub repo ``org/repo[@rev]``."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .files import CONFIG_NAME, ModelConfig, load_model_dir
from ..errors import MissingFileError, UsageError


def resolve_model_dir(src: str | Path) -> Path:
    """The local model directory ``src`` names; pulls zoo names and Hub repos through the Hub cache.

    A run directory (``sdnet train`` output) resolves to its ``best/`` model, else ``last/``.
    """
    path = Path(src)
    if path.is_dir():
        if (path / CONFIG_NAME).is_file():
            return path
        for sub in ("best", "last"):
            if (path / sub / CONFIG_NAME).is_file():
                return path / sub
        raise MissingFileError(f"{path} holds no model: expected {CONFIG_NAME} in it or in best/ or last/")
    if path.exists():
        raise UsageError(f"{path} is a file; pass a model directory (official .pth.tar files go through 'sdnet export')")
    from ..hub.puller import pull_weights  # local import: hub pulls in huggingface_hub

    return Path(pull_weights(str(src)).path)


def load_model_with_config(src: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Like :func:`load_model`, also returning the model's :class:`ModelConfig`."""
    return load_model_dir(resolve_model_dir(src), map_location)


def load_model(src: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a model in eval mode from a run dir, model dir, zoo name or ``org/repo[@rev]``."""
    return load_model_with_config(src, map_location)[0]

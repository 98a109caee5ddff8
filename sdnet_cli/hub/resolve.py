"""A model source turned into a model: ``load_model(src)`` for a run dir, a model dir, a zoo name or a Hub repo
``org/repo[@rev]``.

Local paths are resolved here (:func:`local_model_dir`: a model directory, or a run directory's ``best/``, else
``last/``) without the network; anything else is pulled into the Hub cache by :func:`sdnet_cli.hub.puller.pull`
(bounded, verified). The dependency runs one way: ``hub`` builds on ``models``, never the reverse.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..errors import MissingFileError, UsageError
from ..models.files import CONFIG_NAME, ModelConfig, load_model_dir
from .puller import PullOptions, pull


def local_model_dir(src: str | Path) -> Path | None:
    """The model directory the local path ``src`` names, or ``None`` when nothing exists at ``src``.

    A folder with ``config.json`` is a model directory; a run directory resolves to ``best/``, else ``last/``.
    A folder without a model, or a file, is a ``UsageError`` saying what was expected.
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
    return None


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

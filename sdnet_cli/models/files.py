"""Model directories: ``model.safetensors`` (weights incl. ``step_size`` buffers) + ``config.json``.

``config.json`` = ``{"architecture", "model_args", "num_classes", "stem_type", "dataset", "mean", "std",
"metrics"}`` (docs/design.md; ``"stem"``, the old name of ``"stem_type"``, is still read), checked by
:mod:`~sdnet_cli.models.schema` when built or read. A model directory is written as a whole
(:func:`~sdnet_cli.fsio.staged_dir`: a staging folder beside it, then one atomic switch), so its weights and
config always belong together, whatever instant a process is killed at. No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from .._version import __version__
from ..errors import MissingFileError, UsageError
from ..fsio import atomic_write_bytes, json_bytes, staged_dir, write_file
from .registry import create_model
from .schema import check_config_fields, check_config_object, check_weights
from ..deprecations import renamed_fields
from .stem_type import OLD_FIELD, stem_type_field
from .timm_cfg import timm_config_fields

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = "1"
MODEL_FILES = (WEIGHTS_NAME, CONFIG_NAME)


@renamed_fields(OLD_FIELD)
@dataclass
class ModelConfig:
    """What is needed to rebuild a model and feed it data."""

    architecture: str
    num_classes: int
    stem_type: str = "cifar"
    model_args: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_config_fields(self.architecture, self.num_classes, self.stem_type, self.model_args, self.dataset,
                            self.mean, self.std, self.metrics)

    def build(self) -> nn.Module:
        """A freshly initialised model of this architecture."""
        return create_model(self.architecture, num_classes=self.num_classes, stem_type=self.stem_type,
                            **self.model_args)

    @classmethod
    def from_dict(cls, d: Any, source: str = CONFIG_NAME) -> "ModelConfig":
        """The config of a parsed ``config.json`` object (schema-checked; unknown top-level keys ignored; the old
        key ``"stem"`` read as ``"stem_type"`` with one ``FutureWarning`` per process, located at ``source``)."""
        known = {f for f in cls.__dataclass_fields__}
        obj = stem_type_field(check_config_object(d), source)
        return cls(**{k: v for k, v in obj.items() if k in known})


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Serialise ``tensors`` (+ ``__metadata__``) as safetensors and write them atomically."""
    atomic_write_bytes(path, save_safetensors(tensors, metadata=metadata))


def state_dict_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (safetensors needs unshared, contiguous storage)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def write_model_files(model: nn.Module, directory: Path, config: ModelConfig) -> list[str]:
    """Write ``model.safetensors`` (with ``__metadata__``) and ``config.json`` into ``directory``; returns the names."""
    meta = {"format": "sdnet", "format_version": FORMAT_VERSION, "architecture": config.architecture,
            "sdnet_version": __version__}
    write_file(directory / WEIGHTS_NAME, save_safetensors(state_dict_tensors(model), metadata=meta))
    obj = {**asdict(config), **timm_config_fields(config)}  # + timm's pretrained_cfg (ignored by our reader)
    write_file(directory / CONFIG_NAME, json_bytes(obj))
    return list(MODEL_FILES)


def save_model(model: nn.Module, directory: str | Path, config: ModelConfig) -> Path:
    """Write ``model.safetensors`` + ``config.json`` as one switch of the folder ``directory``; returns it."""
    directory = Path(directory)
    with staged_dir(directory, MODEL_FILES) as staged:
        write_model_files(model, staged, config)
    return directory


def read_config(directory: str | Path) -> ModelConfig:
    """Parse ``config.json`` of a model directory."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise MissingFileError(f"{path} not found: a model directory holds {WEIGHTS_NAME} and {CONFIG_NAME}")
    try:
        obj = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path} is not a valid sdnet config.json: it is not valid JSON ({e}); a model directory's "
                         "config.json is written by sdnet") from None
    try:
        return ModelConfig.from_dict(obj, str(path))
    except UsageError as e:
        raise UsageError(f"{path} is not a valid sdnet config.json: {e}") from None


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning a damaged file into a ``UsageError`` that names it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UsageError(f"{path} is not a readable safetensors file ({e})") from None


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` after the checks: keys, shapes, then dtype kind and finiteness
    (:func:`~sdnet_cli.models.schema.check_weights`); one readable error naming the first bad tensors."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:3])}")
    if shapes:
        problems.append(f"wrong shapes ({len(shapes)}): {', '.join(shapes[:3])}")
    if problems:
        raise UsageError(f"{source} does not fit the model: " + "; ".join(problems))
    check_weights(own, state, source)
    model.load_state_dict(state, strict=True)


def load_model_dir(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Rebuild the model of a model directory and load its weights strictly; returns ``(model.eval(), config)``."""
    directory = Path(directory)
    config = read_config(directory)
    model = config.build()
    load_state_strict(model, read_weights(directory / WEIGHTS_NAME), str(directory / WEIGHTS_NAME))
    return model.to(map_location).eval(), config

"""Model directories: ``model.safetensors`` (weights incl. ``step_size`` buffers) + ``config.json``.

``config.json`` = ``{"architecture", "model_args", "num_classes", "stem", "dataset", "mean", "std",
"metrics"}`` (DESIGN §3). Files are written to a temporary name and renamed, so a crash never leaves a
half-written model. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from .. import __version__
from ..fsio import atomic_write_bytes  # noqa: F401 - re-exported
from .registry import create_model
from ..errors import MissingFileError, UsageError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = "1"


@dataclass
class ModelConfig:
    """What is needed to rebuild a model and feed it data."""

    architecture: str
    num_classes: int
    stem: str = "cifar"
    model_args: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """A freshly initialised model of this architecture."""
        return create_model(self.architecture, num_classes=self.num_classes, stem=self.stem, **self.model_args)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        missing = [k for k in ("architecture", "num_classes") if k not in d]
        if missing:
            raise UsageError(f"config.json lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k in known})


def file_digest(path: str | Path, algorithm: str, chunk: int = 1 << 20) -> str:
    """Hex digest (``hashlib`` algorithm name, e.g. ``md5``, ``sha256``) of a file's content, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_json(path: Path, obj: Any) -> None:
    """``json.dumps(obj, indent=2)`` written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Serialise ``tensors`` (+ ``__metadata__``) as safetensors and write them atomically."""
    atomic_write_bytes(path, save_safetensors(tensors, metadata=metadata))


def state_dict_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (safetensors needs unshared, contiguous storage)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_model(model: nn.Module, directory: str | Path, config: ModelConfig) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (created); returns it."""
    directory = Path(directory)
    meta = {"format": "sdnet", "format_version": FORMAT_VERSION, "architecture": config.architecture,
            "sdnet_version": __version__}
    atomic_save_safetensors(state_dict_tensors(model), directory / WEIGHTS_NAME, meta)
    atomic_write_json(directory / CONFIG_NAME, asdict(config))
    return directory


def read_config(directory: str | Path) -> ModelConfig:
    """Parse ``config.json`` of a model directory."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise MissingFileError(f"{path} not found: a model directory holds {WEIGHTS_NAME} and {CONFIG_NAME}")
    try:
        return ModelConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise UsageError(f"{path} is not a valid sdnet config.json ({e})") from None


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning a damaged file into a ``ValueError`` that names it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UsageError(f"{path} is not a readable safetensors file ({e})") from None


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one readable error naming the first bad keys and shapes."""
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
    model.load_state_dict(state, strict=True)


def load_model_dir(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Rebuild the model of a model directory and load its weights strictly; returns ``(model.eval(), config)``."""
    directory = Path(directory)
    config = read_config(directory)
    model = config.build()
    load_state_strict(model, read_weights(directory / WEIGHTS_NAME), str(directory / WEIGHTS_NAME))
    return model.to(map_location).eval(), config

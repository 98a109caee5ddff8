"""Import the official SDNet checkpoints (``model_best.pth.tar``, plain state dicts) into our models.

The official code wraps each CSC layer as ``DictConv2d.dn`` and each ``_all`` stage as ``_make_layer.layers``;
our modules drop both wrappers, so ``layer1.layers.0.conv1.dn.weight`` → ``layer1.0.conv1.weight``. The file
is read with ``torch.load(weights_only=True)``: pickled code is refused. Atoms are renormalised to unit norm,
as the official forward does before every use of the dictionary; stored step sizes are kept as they are.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from ..layers.csc import CSCConv2d
from ..layers.model_ops import csc_layers
from ..layers.functional import normalize_atoms
from ..models.files import ModelConfig, load_state_strict
from ..models.registry import check_model_name, model_arg_names
from ..errors import MissingFileError, UsageError

_WRAPPERS = re.compile(r"\.(dn|layers)(?=\.)")


def official_to_ours(key: str) -> str:
    """Map one official state-dict key to ours (``module.`` prefix, ``.dn`` and ``.layers`` dropped)."""
    if key.startswith("module."):
        key = key[len("module."):]
    return _WRAPPERS.sub("", key)


def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of an official checkpoint (a state dict, or a dict with ``state_dict``), keys mapped to ours."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported content"
        raise UsageError(
            f"{path} was refused by torch.load(weights_only=True): it holds more than tensors ({reason[:160]})"
        ) from None
    except (RuntimeError, ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile) as e:  # damaged input
        raise UsageError(f"{path} is not a readable PyTorch checkpoint (truncated or another format: {e})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UsageError(f"{path} holds no state dict (expected a dict of tensors or a dict with a 'state_dict' key)")
    return {official_to_ours(k): v for k, v in obj.items()}


def import_official(
    path: str | Path,
    arch: str,
    num_classes: int,
    stem_type: str = "cifar",
    shortcut: bool = True,
    **model_args: object,
) -> tuple[nn.Module, ModelConfig]:
    """Build ``arch`` and load an official checkpoint into it strictly; returns ``(model.eval(), config)``.

    ``shortcut`` applies to the ``*_all`` models (official ``MODEL.SHORTCUT``). A checkpoint of another
    architecture fails with a ``ValueError`` naming the first missing / unexpected keys.
    """
    check_model_name(arch)
    args = dict(model_args)
    if "shortcut" in model_arg_names(arch):
        args["shortcut"] = shortcut
    elif not shortcut:
        raise UsageError(f"--no-shortcut applies to the *_all models, not {arch}")
    config = ModelConfig(architecture=arch, num_classes=num_classes, stem_type=stem_type, model_args=args,
                         dataset=None, metrics={"source": f"official checkpoint {Path(path).name}"})
    model = config.build()
    state = read_official_state_dict(path)
    load_state_strict(model, state, str(path))
    for layer in csc_layers(model, CSCConv2d):
        with torch.no_grad():
            layer.weight.copy_(normalize_atoms(layer.weight))
    return model.eval(), config

"""``import sdnet_cli.timm`` registers the sdnet models with timm's registry (needs timm).

After the import, ``timm.list_models("sdnet*")`` lists ``sdnet18``, ``sdnet18_all``, ``sdnet34``,
``sdnet34_all``, and ``timm.create_model("sdnet18", num_classes=10)`` builds exactly
``sdnet_cli.create_model("sdnet18", num_classes=10)`` (same modules, parameters and buffers; same logits on
the same weights), so timm's ``train.py``/``validate.py`` can use them (``--model sdnet18``, after this
import). ``timm.create_model("hf-hub:ORG/REPO")`` loads an sdnet model directory published on the Hub:
timm reads ``architecture``, ``num_classes``, ``model_args`` and ``pretrained_cfg`` from its ``config.json``
(written by :func:`sdnet_cli.models.timm_cfg.timm_config_fields`) and loads ``model.safetensors``; the
stem, which our format keeps at the top level, is read here from the same ``config.json``. Our own
``resnet18``/``resnet34`` baselines are not registered: timm has models of those names.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import torch.nn as nn
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._hub import download_from_hf

from .errors import UsageError
from .models.registry import create_model, list_models
from .models.timm_cfg import TIMM_PREFIX, default_pretrained_cfg

SDNET_MODELS = tuple(n for n in list_models() if n.startswith(TIMM_PREFIX))
default_cfgs = generate_default_cfgs({name: default_pretrained_cfg() for name in SDNET_MODELS})  # read by register_model


def _cfg_value(cfg: Any, key: str) -> Any:
    return cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)


def _stem_of(pretrained_cfg: Any, cache_dir: Any) -> str | None:
    """The ``stem`` of the sdnet ``config.json`` timm is loading from the Hub (``None`` for other sources)."""
    hub_id = _cfg_value(pretrained_cfg, "hf_hub_id")
    if not hub_id or _cfg_value(pretrained_cfg, "source") != "hf-hub":
        return None
    with open(download_from_hf(hub_id, "config.json", cache_dir=cache_dir)) as f:  # already in the cache: timm read it
        stem = json.load(f).get("stem")
    return stem if isinstance(stem, str) else None


def _build(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm entrypoint body: timm's options off, ours to :func:`create_model`, weights by timm's loader."""
    drop = kwargs.pop("drop_rate", 0.0)
    if drop:
        raise UsageError(f"{name} has no classifier dropout (drop_rate={drop}); leave --drop at 0")
    pretrained_cfg = kwargs.pop("pretrained_cfg", None)
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    cache_dir = kwargs.pop("cache_dir", None)
    kwargs.pop("pretrained_model_args", None)  # timm's record of model_args, which kwargs already hold
    if "stem" not in kwargs:
        kwargs["stem"] = _stem_of(pretrained_cfg, cache_dir) or "cifar"
    model = build_model_with_cfg(_builder(name), name, pretrained, pretrained_cfg=pretrained_cfg,
                                 pretrained_cfg_overlay=overlay, cache_dir=cache_dir, **kwargs)
    model.num_classes = model.linear.out_features  # timm's scripts read it
    return model


def _builder(name: str) -> Callable[..., nn.Module]:
    return lambda **kw: create_model(name, **kw)


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _build(name, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"sdnet {name} (see sdnet_cli.create_model)"
    return entrypoint


for _name in SDNET_MODELS:
    globals()[_name] = register_model(_entrypoint(_name))

__all__ = [*SDNET_MODELS]

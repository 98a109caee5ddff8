"""``import sdnet_cli.timm`` registers the sdnet models with timm's registry (needs timm).

After the import, ``timm.list_models("sdnet*")`` lists ``sdnet18``, ``sdnet18_all``, ``sdnet34``,
``sdnet34_all``, and ``timm.create_model("sdnet18", num_classes=10)`` builds exactly
``sdnet_cli.create_model("sdnet18", num_classes=10)`` (same modules, parameters and buffers; same logits on
the same weights) through timm's own builder (``build_model_with_cfg``), so timm's options work as for its
ResNets: ``num_classes=0``, ``global_pool``, ``drop_rate``, ``drop_path_rate``, ``features_only`` /
``out_indices`` / ``feature_cls`` (timm's feature wrappers over ``feature_info`` and
``forward_intermediates``), ``device``/``dtype``, and timm's ``train.py``/``validate.py`` (``--model sdnet18``,
after this import). ``stem_type`` (``cifar`` by default; ``stem``, its deprecated name, warns once) also
picks the ``pretrained_cfg`` (input size, normalisation). ``timm.create_model("hf-hub:ORG/REPO")`` and ``timm.create_model("local-dir:PATH")`` load an
exported sdnet model directory alike: timm reads ``architecture``, ``num_classes``, ``model_args`` and
``pretrained_cfg`` from its ``config.json`` (written by
:func:`sdnet_cli.models.timm_cfg.timm_config_fields`) and loads ``model.safetensors``; ``stem_type``, which our
format keeps at the top level, is read here from the same ``config.json`` (checked by our schema). Our own
``resnet18``/``resnet34`` baselines are not registered: timm has models of those names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch.nn as nn
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._hub import download_from_hf

from .models.files import CONFIG_NAME, read_config
from .models.registry import create_model, list_models
from .models.stem_type import stem_type_kwargs
from .models.timm_cfg import TIMM_PREFIX, default_pretrained_cfg

SDNET_MODELS = tuple(n for n in list_models() if n.startswith(TIMM_PREFIX))
# read by register_model: the cfg of stem_type cifar (_build describes the stem_type a model is built with)
default_cfgs = generate_default_cfgs({name: default_pretrained_cfg() for name in SDNET_MODELS})
STEM_TYPE_CFG_KEYS = ("input_size", "min_input_size", "pool_size", "crop_pct", "mean", "std")


def _cfg_value(cfg: Any, key: str) -> Any:
    return cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)


def _source_dir(pretrained_cfg: Any, cache_dir: Any) -> Path | None:
    """The model directory (with ``config.json``) timm is loading from ``hf-hub:`` or ``local-dir:``, else ``None``."""
    source = _cfg_value(pretrained_cfg, "source")
    hub_id = _cfg_value(pretrained_cfg, "hf_hub_id")
    if source == "hf-hub" and hub_id:  # already in the cache: timm read it
        return Path(download_from_hf(hub_id, CONFIG_NAME, cache_dir=cache_dir)).parent
    if source == "local-dir" and _cfg_value(pretrained_cfg, "file"):
        return Path(_cfg_value(pretrained_cfg, "file"))
    return None


def _build(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm entrypoint body: ``stem_type`` from the source's ``config.json`` (or ``stem_type=``, default
    ``cifar``), the model by :func:`create_model` through timm's builder (options, weights, feature wrappers)."""
    kwargs = stem_type_kwargs(kwargs)
    pretrained_cfg = kwargs.pop("pretrained_cfg", None)
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    cache_dir = kwargs.pop("cache_dir", None)
    source = _source_dir(pretrained_cfg, cache_dir)
    if source is not None:  # our reader: the whole config.json checked by our schema
        kwargs.setdefault("stem_type", read_config(source).stem_type)
    else:  # the registry's cfg describes stem_type cifar: describe the stem_type asked for instead
        kwargs.setdefault("stem_type", "cifar")
        in_chans = kwargs.get("in_chans", 3)
        type_cfg = default_pretrained_cfg(kwargs["stem_type"], in_chans if isinstance(in_chans, int) else 3)
        overlay = {**{k: type_cfg[k] for k in STEM_TYPE_CFG_KEYS}, **(overlay or {})}
    return build_model_with_cfg(_builder(name), name, pretrained, pretrained_cfg=pretrained_cfg,
                                pretrained_cfg_overlay=overlay, cache_dir=cache_dir,
                                feature_cfg=dict(flatten_sequential=False), **kwargs)


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

"""Turning a :class:`~sdnet_cli.config.Config` into the objects a run needs: CPU settings, model, optimizer.

Nothing here changes process state on import; :func:`cpu_settings` is the one call that does (threads and
the allocator), and ``train`` makes it only for a CPU run, reporting both choices in its start info.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..config import Config, ModelSection, TrainSection
from ..conversion import CSC_ARGS
from ..data.datasets import DatasetInfo
from ..layers import csc_layers
from ..malloc import keep_freed_memory
from ..models.ecosystem import is_ecosystem_name, parse_convert, split_name
from ..models.files import ModelConfig
from ..models.registry import model_arg_names
from ..models.resnet import DEFAULT_WIDTH
from . import distributed as D

CONFIG_CSC_ARGS = tuple(k for k in CSC_ARGS if k in {f.name for f in dataclasses.fields(ModelSection)})
"""The CSC options a training config sets (``power_iters`` is not one: the layers keep its default)."""


def set_threads(requested: int, local_world: int) -> int:
    """Set and return this process's CPU threads: ``requested``, else ``cores // local_world`` (at least 1)."""
    n = requested if requested > 0 else max(1, (os.cpu_count() or 1) // max(1, local_world))
    torch.set_num_threads(n)
    return n


def cpu_settings(t: TrainSection, local_world: int) -> tuple[int, bool]:
    """``(threads, memory_reuse)`` of a CPU run: :func:`set_threads` with ``train.threads``, and glibc memory
    reuse (:func:`~sdnet_cli.malloc.keep_freed_memory`) when ``train.cpu_memory_reuse`` allows it
    (``SDNET_MALLOC_TUNING=0`` still opts out). Both are process-wide and irreversible."""
    threads = set_threads(t.threads, local_world)
    return threads, (keep_freed_memory() if t.cpu_memory_reuse else False)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_config(cfg: Config, info: DatasetInfo, num_classes: int) -> ModelConfig:
    """The :class:`ModelConfig` (architecture + arguments + data facts) of the run's model (``cfg`` checked by
    :func:`~sdnet_cli.config.check_config`); ``num_classes`` comes from the training set (an ImageFolder tree
    has its number of class folders). ``torchvision:``/``timm:`` models keep their ImageNet-style stem."""
    m = cfg.model
    stem_type = "imagenet" if is_ecosystem_name(m.name) else info.stem_type
    return ModelConfig(architecture=m.name, num_classes=num_classes, stem_type=stem_type, model_args=model_args(cfg),
                       dataset=info.name, mean=list(info.mean[:cfg.data.in_chans]), std=list(info.std[:cfg.data.in_chans]))


def model_args(cfg: Config) -> dict[str, Any]:
    """``model_args`` of the run's model: ``in_chans`` and each option of ``cfg.model`` its builder accepts
    (:func:`~sdnet_cli.models.registry.model_arg_names`): the CSC options (those the config has; a
    ``torchvision:``/``timm:`` model only with a conversion), ``shortcut``, ``width`` when not the default, and
    ``convert``."""
    m = cfg.model
    accepted = model_arg_names(m.name)
    args: dict[str, Any] = {"in_chans": cfg.data.in_chans}
    if not is_ecosystem_name(m.name) or m.convert is not None or split_name(m.name)[2] is not None:
        args.update({k: getattr(m, k) for k in CONFIG_CSC_ARGS if k in accepted})
    if "shortcut" in accepted:
        args["shortcut"] = m.shortcut
    if "width" in accepted and m.width != DEFAULT_WIDTH:
        args["width"] = m.width
    if m.convert is not None:
        args["convert"] = parse_convert(m.convert)
    return args


def build_model(mcfg: ModelConfig, cfg: Config, dinfo: D.DistInfo, device: torch.device) -> nn.Module:
    """The freshly initialised model (seeded by ``train.seed``) on ``device``, channels_last, synchronised
    BatchNorm and CSC recomputation (``train.recompute``) as configured."""
    seed_everything(cfg.train.seed)
    model = mcfg.build().to(device)
    for layer in csc_layers(model):
        layer.recompute = cfg.train.recompute
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dinfo.enabled and cfg.model.sync_bn:
        model = D.convert_sync_batchnorm(model, device.type)
    return model


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW over all parameters, weight decay on all of them
    (``optim.name`` and the values checked by :func:`~sdnet_cli.config.check_config`)."""
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0,
                               weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    raise AssertionError(f"optim.name {o.name!r} was not checked (check_config refuses it)")

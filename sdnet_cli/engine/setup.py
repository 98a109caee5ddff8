"""Turning a :class:`~sdnet_cli.config.Config` into the objects a run needs: device, model, optimizer, AMP."""

from __future__ import annotations

import functools
import os
import random
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from ..config import Config
from ..data.datasets import DatasetInfo
from ..models.files import ModelConfig
from ..models.registry import check_model_name
from ..errors import UsageError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a ``ValueError``."""
    if name not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available (use --device cpu)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def set_threads(requested: int, local_world: int) -> int:
    """CPU threads for this process: ``requested``, else the cores divided among the local ranks — and 1
    when the machine is already busy (1-minute load ≥ cores), where OpenMP threads waiting on each other
    make multi-threaded steps several times slower than single-threaded ones."""
    cores = os.cpu_count() or 1
    n = requested if requested > 0 else max(1, cores // max(1, local_world))
    if requested <= 0 and hasattr(os, "getloadavg") and os.getloadavg()[0] >= cores:
        n = 1
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_config(cfg: Config, info: DatasetInfo, num_classes: int | None = None) -> ModelConfig:
    """The :class:`ModelConfig` (architecture + arguments + data facts) of the run's model; ``num_classes``
    defaults to the dataset's (an ImageFolder tree passes its number of class folders)."""
    m = cfg.model
    check_model_name(m.name)
    args: dict[str, Any] = {"in_chans": cfg.data.in_chans}
    if m.name.startswith("sdnet"):
        args.update(lmbd=m.lmbd, n_steps=m.n_steps, mu=m.mu, non_negative=m.non_negative, expansion=m.expansion)
    if m.name.endswith("_all"):
        args["shortcut"] = m.shortcut
    elif not m.shortcut:
        raise UsageError(f"model.shortcut=false applies to the *_all models only, not {m.name}")
    return ModelConfig(architecture=m.name, num_classes=num_classes or info.num_classes, stem=info.stem, model_args=args,
                       dataset=info.name, mean=list(info.mean[:cfg.data.in_chans]), std=list(info.std[:cfg.data.in_chans]))


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW over all parameters, weight decay on all of them."""
    o = cfg.optim
    if o.lr <= 0:
        raise UsageError(f"optim.lr must be > 0, got {o.lr}")
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0,
                               weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    raise UsageError(f"optim.name must be sgd or adamw, got {o.name!r}")


def make_autocast(cfg: Config, device: torch.device) -> tuple[Callable[[], Any] | None, Any]:
    """``(autocast factory or None, GradScaler or None)``; ``--amp`` needs CUDA (bf16, or fp16 + scaler)."""
    if not cfg.train.amp:
        return None, None
    if device.type != "cuda":
        raise UsageError("--amp needs a CUDA device (mixed precision autocast); drop --amp on CPU")
    dtype = torch.bfloat16 if cfg.train.amp_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return functools.partial(torch.autocast, "cuda", dtype=dtype), scaler


def check_training_config(cfg: Config) -> None:
    """Value checks the types alone do not catch."""
    t = cfg.train
    for key, v in (("train.epochs", t.epochs), ("train.batch_size", t.batch_size),
                   ("train.eval_batch_size", t.eval_batch_size)):
        if v < 1:
            raise UsageError(f"{key} must be >= 1, got {v}")
    for key, v in (("train.limit_batches", t.limit_batches), ("train.checkpoint_every", t.checkpoint_every),
                   ("train.step_size_every", t.step_size_every),
                   ("data.workers", cfg.data.workers), ("train.threads", t.threads)):
        if v < 0:
            raise UsageError(f"{key} must be >= 0, got {v}")
    if not 0.0 <= cfg.optim.label_smoothing < 1.0:
        raise UsageError(f"optim.label_smoothing must be in [0, 1), got {cfg.optim.label_smoothing}")
    if cfg.optim.schedule == "step" and not cfg.optim.milestones:
        raise UsageError("optim.schedule=step needs optim.milestones (epochs), e.g. --set optim.milestones=30,60,90")

"""One benchmark workload: a model, a fixed random batch and a step (train: forward + backward + SGD).

Shared by the in-process timer (:mod:`.timing`) and the child process that measures peak memory
(:mod:`.memory`), so both measure exactly the same work.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.registry import check_model_name, create_model
from ..errors import UsageError

MODES = ("train", "eval")


@dataclass(frozen=True)
class Workload:
    """What one benchmarked step does (plain values, so it can be sent to a child process as JSON)."""

    model: str
    batch_size: int = 64
    image_size: int = 32
    mode: str = "train"
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    num_classes: int = 10
    stem: str = "cifar"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that cannot run."""
        check_model_name(self.model)
        if self.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {self.batch_size}")
        min_size = 32 if self.stem == "imagenet" else 8
        if self.image_size < min_size:
            raise UsageError(f"image size must be >= {min_size} for the {self.stem} stem, got {self.image_size}")


def resolve_device(device: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is a ``ValueError``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    return dev


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CPU and on GPUs that support it, else fp16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_step(w: Workload) -> tuple[nn.Module, Callable[[], None], torch.device]:
    """Build ``w``'s model, batch and step function; returns ``(model, step, device)``.

    Train mode: ``SGD(lr=0.01, momentum=0.9)`` on cross-entropy of a random batch ``(N, 3, S, S)``
    with random labels. Eval mode: a forward under ``torch.no_grad``. ``amp`` runs the forward
    under autocast (bf16, or fp16 with a grad scaler on GPUs without bf16).
    """
    w.validate()
    device = resolve_device(w.device)
    torch.manual_seed(w.seed)
    model = create_model(w.model, num_classes=w.num_classes, stem=w.stem).to(device)
    memory_format = torch.channels_last if w.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = torch.randn(w.batch_size, 3, w.image_size, w.image_size, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, w.num_classes, (w.batch_size,), device=device)
    dtype = amp_dtype(device)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=dtype) if w.amp else contextlib.nullcontext()

    fwd = torch.compile(model) if w.compile else model
    if w.mode == "eval":
        model.eval()

        def step() -> None:
            with torch.no_grad(), autocast():
                fwd(x)

        return model, step, device

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=w.amp and dtype == torch.float16)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(fwd(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return model, step, device


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

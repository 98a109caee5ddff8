"""One benchmark workload: a model, a fixed random batch and a step (train: forward + backward + SGD step +
the engine's per-step step-size tracking).

Shared by the in-process timer (:mod:`.timing`) and the child process that measures peak memory
(:mod:`.memory`), so both measure exactly the same work.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TrainSection
from ..devices import resolve_device
from ..engine.step_sizes import WARMUP_STEPS, StepSizeKeeper
from ..errors import UsageError
from ..layers.model_ops import csc_layers
from ..models.registry import check_model_name, create_model
from ..models.sizes import check_image_size
from ..models.stem_type import check_stem_type

STEADY_STEP = WARMUP_STEPS + 1  # time the keeper's steady-state work (its first steps track with more iterations)
STEP_SIZE_EVERY = TrainSection.step_size_every  # the engine's default schedule

MODES = ("train", "eval")


@dataclass(frozen=True, kw_only=True)
class StepSettings:
    """How every benchmarked step runs, whatever the model (shared by :class:`Workload` and
    :class:`~sdnet_cli.bench.options.BenchOptions`; keyword-only).

    ``step_sizes``: a train step ends with what ``sdnet train`` does after that optimizer step: the
    :class:`~sdnet_cli.engine.step_sizes.StepSizeKeeper` at its default schedule, the layers taking turns, from
    step ``STEADY_STEP`` on (consecutive steps, so ``STEP_SIZE_EVERY`` consecutive rounds do all layers once).
    ``recompute``: CSC layers save less for backward and recompute it (``CSCConv2d.recompute``).
    """

    batch_size: int = 64
    image_size: int = 32
    mode: str = "train"
    device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    num_classes: int = 10
    stem_type: str = "cifar"
    seed: int = 0
    step_sizes: bool = True
    recompute: bool = False


@dataclass(frozen=True)
class Workload(StepSettings):
    """What one benchmarked step does: ``model`` under :class:`StepSettings` (plain values, so it can be sent to a
    child process as JSON)."""

    model: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __post_init__(self) -> None:
        """Raise :class:`UsageError` for settings that cannot run (checked once, when the workload is made)."""
        check_model_name(self.model)
        if self.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        check_stem_type(self.stem_type)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {self.batch_size}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise UsageError(f"number of classes must be >= 1, got {self.num_classes}")
        check_image_size(self.image_size, self.stem_type)
        resolve_device(self.device)


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
    with random labels, then (``w.step_sizes``) the keeper's step-size tracking. Eval mode: a forward
    under ``torch.no_grad``. ``amp`` runs the forward under autocast (bf16, or fp16 with a grad scaler
    on GPUs without bf16).
    """
    device = resolve_device(w.device)
    torch.manual_seed(w.seed)
    model = create_model(w.model, num_classes=w.num_classes, stem_type=w.stem_type).to(device)
    memory_format = torch.channels_last if w.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    for layer in csc_layers(model):
        layer.recompute = w.recompute
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
    keeper = StepSizeKeeper(model, every=STEP_SIZE_EVERY if w.step_sizes else 0)
    step_no = itertools.count(STEADY_STEP)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(fwd(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        keeper.after_step(next(step_no))

    return model, train_step, device


def step_size_step(model: nn.Module) -> Callable[[], None] | None:
    """The keeper's per-step work alone on ``model`` (to time its share of a train step), or ``None`` when
    the model has no CSC layer: one call is one full turn of the schedule, ``STEP_SIZE_EVERY`` consecutive
    steady-state steps, so its time divided by ``STEP_SIZE_EVERY`` is the mean per step."""
    if not csc_layers(model):
        return None
    keeper = StepSizeKeeper(model, every=STEP_SIZE_EVERY)

    def one_turn() -> None:
        for step in range(STEADY_STEP, STEADY_STEP + STEP_SIZE_EVERY):
            keeper.after_step(step)

    return one_turn


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

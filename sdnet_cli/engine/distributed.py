"""Distributed training under ``torchrun``: process group, the sharded batch sampler, CPU SyncBatchNorm.

Data parallelism keeps the *global* batch identical to a single-process run: every epoch draws one
permutation (seeded by ``(seed, epoch)``), cuts it into global batches of ``batch_size`` and gives rank
``r`` the ``r``-th contiguous slice of each. With synchronised BatchNorm the forward pass is then the
single-process one split in pieces, and DDP's gradient average is the single-process gradient.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor
from torch.utils.data import Sampler
from ..errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    """Rank and world of this process (``world == 1`` when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the ``torchrun`` process group (``gloo`` on CPU, ``nccl`` on CUDA) when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    info = DistInfo(rank, world, local, int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return info


def shutdown_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch ``epoch``: a permutation of ``range(n)`` seeded by ``(seed, epoch)``."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)]).permutation(n)


class ShardedBatchSampler(Sampler[list[int]]):
    """Global batches of ``batch_size`` (last partial one dropped) from :func:`epoch_permutation`; rank ``r``
    gets slice ``r`` of each (``batch_size`` must divide by ``world``). ``start`` skips the first batches
    (resuming mid-epoch); ``limit`` caps the batches per epoch (0 = all)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, limit: int = 0) -> None:
        if batch_size % world:
            raise UsageError(f"train.batch_size={batch_size} must be divisible by the number of processes ({world})")
        if n < batch_size:
            raise UsageError(f"the training set has {n} images, fewer than train.batch_size={batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.limit = rank, world, limit
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select epoch ``epoch``'s order and skip its first ``start`` batches."""
        self.epoch, self.start = int(epoch), int(start)

    def batches_per_epoch(self) -> int:
        full = self.n // self.batch_size
        return min(full, self.limit) if self.limit else full

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_permutation(self.n, self.seed, self.epoch)
        per = self.batch_size // self.world
        for b in range(self.start, self.batches_per_epoch()):
            lo = b * self.batch_size + self.rank * per
            yield order[lo:lo + per].tolist()


class _AllReduceSum(torch.autograd.Function):
    """``y = Σ_ranks x``; its gradient is ``Σ_ranks dy`` (each rank's ``x`` feeds every rank's ``y``)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: ANN001
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tensor:  # noqa: ANN001
        dx = dy.clone()
        dist.all_reduce(dx)
        return dx


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are over the global batch of all ranks, for any device.

    ``torch.nn.SyncBatchNorm`` only runs on accelerators; this one all-reduces the per-channel
    ``(Σx, Σx², count)`` with a differentiable all-reduce so the backward
    pass is synchronised too (used on CPU/gloo).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        # float64 sums: E[x²] − E[x]² in float32 cancels badly when |mean| ≫ std
        xd = xf.double()
        count = torch.tensor([x.numel() / c], dtype=torch.float64, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([xd.sum((0, 2, 3)), xd.pow(2).sum((0, 2, 3)), count]))
        n = stats[-1]
        mean64 = stats[:c] / n
        var = (stats[c:2 * c] / n - mean64 * mean64).clamp_min(0).float()
        mean = mean64.float()
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * float(n / (n - 1)), alpha=m)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """Swap every ``BatchNorm2d`` for a synchronised one (torch's on CUDA, :class:`CPUSyncBatchNorm` else)."""
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def swap(m: nn.Module) -> nn.Module:
        if type(m) is nn.BatchNorm2d:
            new = CPUSyncBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            new.load_state_dict(m.state_dict())
            return new
        for name, child in m.named_children():
            setattr(m, name, swap(child))
        return m

    return swap(model)


def all_reduce_sum(t: Tensor) -> Tensor:
    """In-place sum over ranks (a no-op when not distributed); returns ``t``."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """``True`` when ``flag`` is set on any rank (its own all-reduce; the flag itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def state_digest(model: nn.Module) -> bytes:
    """SHA-256 of every parameter and buffer (bytes, in order): equal digests = bitwise-equal models."""
    h = hashlib.sha256()
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


def check_ranks_identical(model: nn.Module, step: int) -> None:
    """Raise ``RuntimeError`` when the ranks' weights (and buffers) are not bitwise identical."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return
    device = next(model.parameters()).device
    mine = torch.tensor(list(state_digest(model)), dtype=torch.int64, device=device)
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"ranks hold different weights after step {step}")

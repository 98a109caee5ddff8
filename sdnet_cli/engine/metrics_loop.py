"""Classification metrics over a data loader: loss, top-1, top-5, per-class accuracy, throughput.

Under ``torchrun`` each rank evaluates its shard and the sums are all-reduced, so every rank returns
the metrics of the whole set.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .distributed import all_reduce_sum
from ..errors import UsageError


def topk_correct(logits: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample bool ``(N,)``: is ``target`` among the ``k`` largest logits (``k`` capped at the class count)."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == target[:, None]).any(dim=1)


@torch.no_grad()
def loader_metrics(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device | str = "cpu",
    autocast: Callable[[], Any] | None = None,
    channels_last: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (switched to eval mode) on ``loader``.

    Returns ``{"loss", "top1", "top5", "per_class", "images", "seconds", "images_per_s"}``; accuracies in %,
    ``loss`` the mean cross-entropy, ``per_class`` the top-1 % of each class (``None`` for absent classes).
    """
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)  # loss sum, top-1, top-5
    cls_correct = torch.zeros(num_classes, dtype=torch.float64)
    cls_total = torch.zeros(num_classes, dtype=torch.float64)
    t0 = time.perf_counter()
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast() if autocast is not None else contextlib.nullcontext():
            logits = model(x)
        logits = logits.float()
        c1 = topk_correct(logits, y, 1)
        sums += torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(), c1.sum().item(),
                              topk_correct(logits, y, 5).sum().item()], dtype=torch.float64)
        yc = y.cpu()
        cls_total += torch.bincount(yc, minlength=num_classes).double()
        cls_correct += torch.bincount(yc, weights=c1.cpu().double(), minlength=num_classes)
        if on_batch is not None:
            on_batch(len(y))
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    packed = all_reduce_sum(torch.cat([sums, cls_correct, cls_total]).to(device)).cpu()
    sums, cls_correct, cls_total = packed[:3], packed[3:3 + num_classes], packed[3 + num_classes:]
    n = float(cls_total.sum())
    if n == 0:
        raise UsageError("the evaluation set is empty")
    per_class = [round(100.0 * float(c) / float(t), 4) if t > 0 else None for c, t in zip(cls_correct, cls_total)]
    return {
        "loss": float(sums[0]) / n,
        "top1": 100.0 * float(sums[1]) / n,
        "top5": 100.0 * float(sums[2]) / n,
        "per_class": per_class,
        "images": int(n),
        "seconds": seconds,
        "images_per_s": n / seconds if seconds > 0 else float("inf"),
    }

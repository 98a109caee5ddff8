"""Accuracy and first-layer reconstruction error of a model on uint8 images, at a chosen test-time λ.

``images_accuracy(model, images, labels, mean, std, lmbd)`` normalises ``x = (images/255 − mean) / std``, runs
the model in batches and records, per sample, whether the prediction is right, the cross-entropy, and
the reconstruction error ``‖x₀ − D z‖²`` of the first CSC layer (``x₀`` its input: the normalised image
for the stem). ``lmbd`` is a float or a per-sample array ``(N,)``; it is set on the first (or every) CSC
layer for the call and restored afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..data.channels import in_model_channels
from ..layers import csc_layers, set_lmbd
from ..layers.csc import CSCConv2d


@dataclass
class AccuracyResult:
    """Per-sample outcome of one accuracy measurement: ``correct`` bool ``(N,)``, ``loss`` ``(N,)``, ``recon`` ``(N,)`` or None."""

    correct: np.ndarray
    loss: np.ndarray
    recon: np.ndarray | None

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy in percent."""
        return 100.0 * float(self.correct.mean()) if len(self.correct) else float("nan")

    @property
    def recon_error(self) -> float | None:
        """Mean first-layer ``‖x − Dz‖²`` over the samples (None without a CSC layer)."""
        return None if self.recon is None else float(self.recon.mean())


def to_pixels(images: np.ndarray, channels: int = 3) -> Tensor:
    """uint8 ``(N, H, W, C)`` → float ``(N, channels, H, W)`` in ``[0, 1]``; ``channels=1`` keeps the first
    channel of RGB images (what training feeds a grey model)."""
    x = torch.from_numpy(np.ascontiguousarray(in_model_channels(images, channels)))
    return x.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def to_input(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ``(N, H, W, 3 or 1)`` → normalised float ``(N, C, H, W)``, ``C = len(mean)`` (1: grey models)."""
    x = to_pixels(images, len(mean))
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def first_csc(model: nn.Module) -> CSCConv2d | None:
    """The first convolutional sparse coding layer of ``model`` (None for a plain ResNet)."""
    layers = csc_layers(model, CSCConv2d)
    return layers[0] if layers else None


@contextmanager
def lmbd_override(model: nn.Module, lmbd: float | Tensor | None, layers: str = "first") -> Iterator[None]:
    """Set λ for the duration of a ``with`` block (no-op for ``None``), restoring every layer's value after."""
    found = csc_layers(model)
    saved = [layer.lmbd for layer in found]
    try:
        if lmbd is not None:
            set_lmbd(model, lmbd, layers)
        yield
    finally:
        for layer, value in zip(found, saved):
            layer.lmbd = value


class _ReconHook:
    """Forward hook on the first CSC layer storing ``‖x − Dz‖²`` per sample of the last batch."""

    def __init__(self, layer: CSCConv2d) -> None:
        self.layer = layer
        self.value: Tensor | None = None
        self.handle = layer.register_forward_hook(self)

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        with torch.no_grad():
            self.value = self.layer.reconstruction_error(inputs[0].detach(), output.detach())

    def remove(self) -> None:
        self.handle.remove()


@torch.inference_mode()
def tensor_accuracy(
    model: nn.Module,
    x: Tensor,
    labels: np.ndarray,
    lmbd: float | np.ndarray | None = None,
    layers: str = "first",
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> AccuracyResult:
    """Per-sample correctness, loss and first-layer error of normalised inputs ``x`` ``(N, C, H, W)``; ``lmbd``
    float, per-sample ``(N,)`` or None (as is)."""
    model.eval()
    layer = first_csc(model)
    hook = _ReconHook(layer) if layer is not None else None
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    correct, losses, recons = [], [], []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device).contiguous(memory_format=torch.channels_last)
            batch_lmbd: float | Tensor | None = lmbd
            if isinstance(lmbd, np.ndarray):
                batch_lmbd = torch.as_tensor(lmbd[i:i + batch_size], dtype=torch.float32, device=device).view(
                    -1, 1, 1, 1)
            with lmbd_override(model, batch_lmbd, layers):
                logits = model(xb).float().cpu()
            yb = y[i:i + batch_size]
            correct.append((logits.argmax(1) == yb).numpy())
            losses.append(F.cross_entropy(logits, yb, reduction="none").numpy())
            if hook is not None and hook.value is not None:
                recons.append(hook.value.float().cpu().numpy())
    finally:
        if hook is not None:
            hook.remove()
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return AccuracyResult(cat(correct).astype(bool), cat(losses), cat(recons) if hook is not None else None)


def images_accuracy(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    lmbd: float | np.ndarray | None = None,
    layers: str = "first",
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> AccuracyResult:
    """:func:`tensor_accuracy` of uint8 ``images`` ``(N, H, W, C)`` against int ``labels`` ``(N,)`` at ``lmbd``
    (see the module doc)."""
    return tensor_accuracy(model, to_input(images, mean, std), labels, lmbd, layers, batch_size, device)


def sweep_lmbds(
    model: nn.Module,
    x: Tensor,
    labels: np.ndarray,
    lmbds: Sequence[float],
    layers: str = "first",
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    on_step: Callable[[], None] | None = None,
) -> list[AccuracyResult]:
    """One :class:`AccuracyResult` per λ in ``lmbds`` for normalised inputs ``x``."""
    out = []
    for lmbd in lmbds:
        out.append(tensor_accuracy(model, x, labels, float(lmbd), layers, batch_size, device))
        if on_step:
            on_step()
    return out


def best_index(results: Sequence[AccuracyResult]) -> int:
    """Index of the best result: highest accuracy, ties broken by the lower mean cross-entropy."""
    return min(range(len(results)), key=lambda i: (-results[i].accuracy, float(results[i].loss.mean())))

"""Mixed precision of a training run: the one place that knows about autocast and gradient scaling.

``--amp`` runs the forward under ``torch.autocast`` on CUDA in bfloat16 (no scaling needed) or float16.
float16 gradients underflow, so the loss is multiplied by a dynamic scale ``S`` before the backward and
the gradients divided by ``S`` before clipping and the optimizer step (``torch.amp.GradScaler``; a step
whose gradients hold inf/NaN is skipped and ``S`` halves). Without float16 the scaler is disabled and
every call below is the plain ``loss.backward(); clip; optimizer.step()``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Iterable

import torch
import torch.nn as nn

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


class Precision:
    """``autocast()`` for the forward and ``backward_step(...)`` for the update, for one device (``amp`` on a
    CUDA device and ``amp_dtype`` one of :data:`AMP_DTYPES`, as :func:`~sdnet_cli.config.check_config` ensures)."""

    def __init__(self, amp: bool, amp_dtype: str, device: torch.device) -> None:
        self.device_type = device.type
        self.dtype = AMP_DTYPES[amp_dtype] if amp else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self) -> ContextManager[Any]:
        """The forward's context: autocast to the AMP dtype, or nothing."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter],
                      grad_clip: float) -> None:
        """Gradients of ``loss`` (scaled by ``S``), unscaled, clipped to global norm ``grad_clip`` when > 0,
        then one optimizer step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if grad_clip > 0:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        """The scaler's state for a resumable checkpoint (``None`` without float16)."""
        return self.scaler.state_dict() if self.scaler.is_enabled() else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Inverse of :meth:`state_dict`."""
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)

"""The one place that checks a ``--device`` value and turns it into a ``torch.device``."""

from __future__ import annotations

import torch

from .errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def check_device(name: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, else a :class:`~sdnet_cli.errors.UsageError` (no device is
    touched: options call this when they are built)."""
    base = str(name).split(":", 1)[0]
    if base not in DEVICE_CHOICES or (base != "cuda" and ":" in str(name)):
        raise UsageError(f"--device must be auto, cpu or cuda, got {name!r}")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA (device ``local_rank``) when available, else CPU; ``cuda`` (or ``cuda:N``) without a GPU
    is a :class:`~sdnet_cli.errors.UsageError`."""
    check_device(name)
    base = str(name).split(":", 1)[0]
    if base == "cpu" or (base == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (use --device cpu)")
    index = int(name.split(":", 1)[1]) if ":" in str(name) else local_rank
    return torch.device("cuda", index)

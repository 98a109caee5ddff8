"""The standard attacks, from the reference AutoAttack (Croce & Hein 2020) as packaged by ``pyautoattack``.

Why pyautoattack (the optional extra ``attacks``: ``pip install "sdnet[attacks]"``): it is the reference
implementation RobustBench uses (APGD-CE, APGD-T, FAB-T, Square: the ``standard`` suite), it has no
dependencies of its own, and it ships its own checks for signs of gradient masking. ``torchattacks`` ships
the same attacks but pins ``requests~=2.25.1``, which conflicts with huggingface_hub and the rest of the stack.

``run_library_attack(model, pixels, labels, name, eps, norm, seed)`` runs one attack on pixels in ``[0, 1]``
(``model`` maps pixels to logits, see :mod:`~sdnet_cli.robust.attacked`) and returns the adversarial pixels
and the library's own warnings (its checks log them; they are reported, never swallowed).
"""

from __future__ import annotations

import logging
from typing import Any

import torch.nn as nn
from torch import Tensor

from ..errors import UsageError

_SUITES = {"autoattack": None, "apgd-ce": ["apgd-ce"], "apgd-dlr": ["apgd-dlr"], "square": ["square"]}
NORM_NAMES = {"linf": "Linf", "l2": "L2"}


def _library() -> Any:
    try:
        import pyautoattack
    except ImportError:
        raise UsageError("--attack autoattack/apgd-*/square needs the 'attacks' extra: pip install \"sdnet[attacks]\" "
                         "(pyautoattack); --attack pgd-linf, pgd-l2 and fgsm work without it") from None
    return pyautoattack


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_library_attack(
    model: nn.Module,
    pixels: Tensor,
    labels: Tensor,
    name: str,
    eps: float,
    norm: str = "linf",
    seed: int = 0,
    batch_size: int = 500,
    square_queries: int | None = None,
) -> tuple[Tensor, list[str]]:
    """Adversarial pixels of attack ``name`` (``autoattack`` = the standard suite, ``apgd-ce``, ``apgd-dlr``,
    ``square``) at radius ``eps`` (ℓ∞ or ℓ₂), and the warnings of the library's checks."""
    if name not in _SUITES:
        raise UsageError(f"unknown library attack {name!r}; valid: {', '.join(_SUITES)}")
    lib = _library()
    device = pixels.device
    suite = _SUITES[name]
    attack = lib.AutoAttack(model, norm=NORM_NAMES[norm], eps=float(eps), seed=seed, device=device,
                            version="standard" if suite is None else "custom",
                            **({} if suite is None else {"attacks": suite}))
    if suite is not None and name.startswith("apgd"):
        attack.apgd.n_restarts = 1
    if square_queries is not None:
        attack.square.n_queries = int(square_queries)
    collect = _Collect()
    logger = logging.getLogger("auto-attack")
    logger.addHandler(collect)
    was_training = model.training
    model.eval()
    try:
        if eps == 0:
            return pixels.detach().clone(), []
        # contiguous: the library reshapes with .view (a permuted uint8→float tensor would fail there)
        x_adv, _ = attack.run_standard_evaluation(pixels.detach().contiguous(), labels.contiguous(),
                                                  batch_size=batch_size)
    finally:
        logger.removeHandler(collect)
        model.train(was_training)
    return x_adv.detach(), collect.messages


def library_version() -> str | None:
    """pyautoattack's version, or None when it is not installed."""
    try:
        import pyautoattack
    except ImportError:
        return None
    return str(getattr(pyautoattack, "__version__", "unknown"))


def is_available() -> bool:
    """Whether the ``attacks`` extra (pyautoattack) is installed."""
    return library_version() is not None


__all__ = ["NORM_NAMES", "is_available", "library_version", "run_library_attack"]

"""Our baseline attacks: white-box PGD (Madry et al. 2018) with a random start, and FGSM, on pixels ``[0, 1]``.

``model`` maps pixels ``u ∈ [0, 1]`` to logits (an :class:`~sdnet_cli.robust.attacked.AttackedModel`: the
normalisation and the defence are inside it), so the attack differentiates through the normalisation and
every unrolled FISTA step of the CSC layers (and through the per-sample λ rule when it is adaptive).
For the ℓ∞ ball: ``δ₀ ~ U(−ε, ε)``, ``u ← Π(u + α·sign ∇ℓ)``; for ℓ₂: ``δ₀`` uniform in the ball,
``u ← Π(u + α·∇ℓ / ‖∇ℓ‖₂)``. ``Π`` projects onto the ε-ball around the clean image, then clips to
``[0, 1]`` (clipping never leaves the ball: it moves every pixel towards the clean value's box).
``ℓ`` is the cross-entropy of the true label. FGSM is one ℓ∞ step of size ``ε`` from the clean image
(no random start). The standard attacks (AutoAttack and its parts) come from pyautoattack
(:mod:`sdnet_cli.robust.autoattack`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from ..errors import UsageError

NORMS = ("pgd-linf", "pgd-l2")
LIBRARY_ATTACKS = ("autoattack", "apgd-ce", "apgd-dlr", "square")  # pyautoattack (the `attacks` extra)
ATTACKS = LIBRARY_ATTACKS + NORMS + ("fgsm",)


def _flat_norm(v: Tensor) -> Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.dim() - 1)))


def project(u: Tensor, clean: Tensor, eps: float, norm: str) -> Tensor:
    """Project pixels ``u`` onto ``{‖u − clean‖ ≤ ε} ∩ [0, 1]`` (ℓ∞ exactly; ℓ₂ ball then box)."""
    delta = u - clean
    if norm == "pgd-linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    return (clean + delta).clamp(0.0, 1.0)


def _random_start(clean: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    if norm == "pgd-linf":
        noise = torch.rand(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device) * 2 - 1
        return noise * eps
    direction = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)
    radius = torch.rand((clean.shape[0],), generator=generator, dtype=clean.dtype).to(clean.device)
    radius = radius.pow(1.0 / clean[0].numel()).view(-1, *([1] * (clean.dim() - 1)))
    return direction / _flat_norm(direction) * radius * eps


def pgd_attack(
    model: nn.Module,
    pixels: Tensor,
    labels: Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "pgd-linf",
    generator: torch.Generator | None = None,
    random_start: bool = True,
) -> Tensor:
    """Adversarial pixels ``(N, C, H, W)`` in ``[0, 1]`` within ``ε`` of ``pixels`` (ℓ∞ or ℓ₂).

    ``model`` maps pixels to logits. ``step_size`` α defaults to ``2.5·ε / steps``. ``eps = 0`` returns the
    clean pixels.
    """
    if norm not in NORMS:
        raise UsageError(f"unknown attack {norm!r}; valid: {', '.join(NORMS)}")
    if not eps >= 0 or steps < 1:
        raise UsageError(f"--eps must be >= 0 and --steps >= 1, got eps={eps}, steps={steps}")
    clean = pixels.detach()
    if eps == 0:
        return clean.clone()
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    was_training = model.training
    model.eval()
    u = project(clean + _random_start(clean, eps, norm, generator), clean, eps, norm) if random_start else clean
    try:
        with torch.enable_grad():
            for _ in range(steps):
                u = u.detach().requires_grad_(True)
                loss = F.cross_entropy(model(u), labels, reduction="sum")
                (grad,) = torch.autograd.grad(loss, u)
                step = grad.sign() if norm == "pgd-linf" else grad / _flat_norm(grad)
                u = project(u.detach() + alpha * step, clean, eps, norm)
    finally:
        model.train(was_training)
    return u.detach()


def fgsm_attack(model: nn.Module, pixels: Tensor, labels: Tensor, eps: float) -> Tensor:
    """FGSM (Goodfellow et al. 2015): ``clip(u + ε·sign ∇ℓ(u), 0, 1)``, one step from the clean pixels."""
    return pgd_attack(model, pixels, labels, eps, steps=1, step_size=eps, random_start=False)


def parse_eps(spec: str) -> list[float]:
    """``'8/255'``, ``'0.03'`` or a comma list ``'0,2/255,8/255'`` → floats ≥ 0 (pixel units of ``[0, 1]``)."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            if "/" in part:
                a, b = part.split("/", 1)
                value = float(a) / float(b)
            else:
                value = float(part)
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"bad --eps {part!r}: use a number like 0.03 or a fraction like 8/255") from None
        if not (value >= 0 and value != float("inf")):
            raise UsageError(f"--eps must be a finite number >= 0, got {part}")
        out.append(value)
    if not out:
        raise UsageError("--eps needs at least one value")
    return out

"""White-box PGD (Madry et al. 2018) with a random start, in the model's input range ``[0, 1]``.

The attack works on pixels ``u ∈ [0, 1]`` and differentiates through ``model((u − mean) / std)``, i.e.
through the normalisation and every unrolled FISTA step of the CSC layers (at whatever λ they hold).
For the ℓ∞ ball: ``δ₀ ~ U(−ε, ε)``, ``u ← Π(u + α·sign ∇ℓ)``; for ℓ₂: ``δ₀`` uniform in the ball,
``u ← Π(u + α·∇ℓ / ‖∇ℓ‖₂)``. ``Π`` projects onto the ε-ball around the clean image, then clips to
``[0, 1]`` (clipping never leaves the ball: it moves every pixel towards the clean value's box).
``ℓ`` is the cross-entropy of the true label.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from ..errors import UsageError

NORMS = ("pgd-linf", "pgd-l2")


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


def pgd_attack(
    model: nn.Module,
    pixels: Tensor,
    labels: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "pgd-linf",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Adversarial pixels ``(N, C, H, W)`` in ``[0, 1]`` within ``ε`` of ``pixels`` (ℓ∞ or ℓ₂).

    ``step_size`` α defaults to ``2.5·ε / steps``. ``eps = 0`` or ``steps = 0`` returns the clean pixels.
    """
    if norm not in NORMS:
        raise UsageError(f"unknown attack {norm!r}; valid: {', '.join(NORMS)}")
    if eps < 0 or steps < 0:
        raise UsageError(f"--eps and --steps must be >= 0, got eps={eps}, steps={steps}")
    clean = pixels.detach()
    if eps == 0 or steps == 0:
        return clean.clone()
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    m = torch.tensor(mean, dtype=clean.dtype, device=clean.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=clean.dtype, device=clean.device).view(1, -1, 1, 1)
    was_training = model.training
    model.eval()
    if norm == "pgd-linf":
        noise = torch.rand(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device) * 2 - 1
        delta = noise * eps
    else:
        direction = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)
        radius = torch.rand((clean.shape[0],), generator=generator, dtype=clean.dtype).to(clean.device)
        radius = radius.pow(1.0 / clean[0].numel()).view(-1, *([1] * (clean.dim() - 1)))
        delta = direction / _flat_norm(direction) * radius * eps
    u = project(clean + delta, clean, eps, norm)
    try:
        with torch.enable_grad():
            for _ in range(steps):
                u = u.detach().requires_grad_(True)
                loss = F.cross_entropy(model((u - m) / s), labels, reduction="sum")
                (grad,) = torch.autograd.grad(loss, u)
                step = grad.sign() if norm == "pgd-linf" else grad / _flat_norm(grad)
                u = project(u.detach() + alpha * step, clean, eps, norm)
    finally:
        model.train(was_training)
    return u.detach()


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
        if value < 0:
            raise UsageError(f"--eps must be >= 0, got {part}")
        out.append(value)
    if not out:
        raise UsageError("--eps needs at least one value")
    return out

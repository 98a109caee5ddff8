"""How far the unrolled FISTA steps of each CSC layer are from the lasso optimum.

For a layer with input ``x`` the objective is ``F(z) = λ‖z‖₁ + μ/2‖z‖² + ½‖x − Dz‖²``. FISTA iterates
``z_1, z_2, …`` (exactly those of :func:`sdnet_cli.layers.functional.fista`: the ``k``-step unrolled layer
outputs ``z_k``) are run to ``max_steps``; ``F*`` is estimated as the lowest objective seen after
``opt_steps`` iterations. The curve ``F(z_k) − F*`` (mean over the batch) shows where the trained
``n_steps`` stand.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor

from ..layers import functional as SF
from ..layers.csc import CSCConv2d
from .probe import CodeRecord
from ..errors import UsageError


def _expanded(layer: CSCConv2d, x: Tensor) -> Tensor:
    return x if layer.expansion == 1 else x.repeat(1, layer.expansion, 1, 1)


@torch.no_grad()
def fista_iterates(layer: CSCConv2d, x: Tensor, n_iter: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(z_k, F(z_k))`` for ``k = 1 … n_iter``; ``z_k`` equals ``layer`` run with ``n_steps = k`` on ``x``.

    ``F`` is the per-sample objective ``(N,)``. One ``D`` and one ``Dᵀ`` per iteration: by linearity the
    extrapolated point's ``D y = (1 + β) D z_k − β D z_{k−1}`` is formed from decodings already computed.
    """
    xe = _expanded(layer, x)
    w, s, p = layer.weight, layer.stride, layer.padding
    step = layer.step_size.to(x.dtype)
    lmbd = layer.lmbd.to(x) if isinstance(layer.lmbd, Tensor) else layer.lmbd
    scale = 1.0 / (1.0 + layer.mu * step) if layer.mu else 1.0
    thr = lmbd * step

    def prox(v: Tensor) -> Tensor:
        return SF.elastic_net_prox(v, thr, scale, layer.non_negative)

    def coded(z: Tensor) -> tuple[Tensor, Tensor]:
        return z, SF.dict_apply(z, w, s, p)

    def fista_step(y_dy: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y, dy = y_dy
        return coded(prox(y + step * SF.dict_transpose(xe - dy, w, s, p)))

    def extrapolate(prev: tuple[Tensor, Tensor], cur: tuple[Tensor, Tensor], beta: float) -> tuple[Tensor, Tensor]:
        return SF.momentum_point(prev[0], cur[0], beta), SF.momentum_point(prev[1], cur[1], beta)

    z1 = coded(prox(step * SF.dict_transpose(xe, w, s, p)))
    for z, dz in SF.fista_loop(z1, fista_step, n_iter, extrapolate):
        yield z, SF.lasso_objective(xe, z, dz, lmbd, layer.mu)


@torch.no_grad()
def objective_curve(layer: CSCConv2d, x: Tensor, max_steps: int = 50, opt_steps: int = 300,
                    tol: float = 1e-7) -> dict[str, Any]:
    """Mean objective ``F(z_k)`` for ``k = 1 … max_steps`` and the estimate ``F*`` of the optimum.

    ``F*`` = lowest mean objective within ``opt_steps`` iterations (stopping early, past ``max_steps``, once
    five successive iterations change it by less than ``tol`` relatively). Returns ``{'objective': [max_steps
    floats], 'optimum': F*, 'optimum_steps': iterations run, 'trained_steps': n, 'gap_at_trained': …}`` where
    the gap is ``(F(z_n) − F*) / |F*|`` at the layer's own ``n_steps`` (``None`` when ``n > max_steps``).
    """
    if max_steps < 1 or opt_steps < max_steps:
        raise UsageError(f"need 1 <= max_steps <= opt_steps, got max_steps={max_steps}, opt_steps={opt_steps}")
    values: list[float] = []
    calm = 0
    for k, (_, f) in enumerate(fista_iterates(layer, x, opt_steps), start=1):
        values.append(float(f.mean()))
        if k > 1 and abs(values[-1] - values[-2]) <= tol * abs(values[-1]):
            calm += 1
        else:
            calm = 0
        if k >= max_steps and calm >= 5:
            break
    optimum = min(values)
    curve = values[:max_steps]
    n = int(layer.n_steps)
    gap = (curve[n - 1] - optimum) / abs(optimum) if n <= max_steps and optimum != 0 else None
    return {"objective": curve, "optimum": optimum, "optimum_steps": len(values), "trained_steps": n,
            "gap_at_trained": gap}


def convergence_stats(records: list[CodeRecord], max_steps: int = 50, opt_steps: int = 300,
                      max_images: int = 4) -> list[dict[str, Any]]:
    """:func:`objective_curve` for every recorded CSC layer on (at most ``max_images`` of) its own input."""
    rows = []
    for r in records:
        curve = objective_curve(r.layer, r.input[:max_images], max_steps, opt_steps)
        rows.append({"layer": r.name, **curve})
    return rows

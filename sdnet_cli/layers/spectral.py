"""The spectrum of a dictionary: ``L`` = the largest eigenvalue of ``DᵀD``, for the FISTA step ``0.9 / L``.

Pure functions: ``csc_gram`` / ``linear_gram`` give ``v ↦ DᵀD v``; ``power_iteration`` and ``lanczos`` (a fixed
number of iterations, no host reads: the small tridiagonal problem is solved on the device by
``top_eigenpair_psd``) estimate its top eigenpair; ``_lanczos_to_tolerance`` runs to a tolerance (a set-up with a
data-dependent stop). ``circular_csc_gram`` is ``DᵀD`` on a torus, whose top eigenvalue is a fresh layer's ``L``
(size-free). The layers' step-size lifecycle (docs/design.md §3) is built on them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .dictionary import IntPair, _pair, dict_apply, dict_transpose


def power_iteration(
    gram: Callable[[Tensor], Tensor],
    v: Tensor,
    n_iter: int,
) -> tuple[Tensor, Tensor]:
    """Largest eigenvalue ``L`` of a PSD operator ``gram`` (``DᵀD``) by ``n_iter`` power iterations from ``v``.

    Returns ``(L, v)`` with ``L = ‖gram(v_prev)‖`` for the unit vector ``v_prev`` of the last
    iteration (a lower bound that converges to ``L``) and ``v`` the new unit vector, to warm-start
    the next call. A fixed count and no host read, so it traces into compiled graphs; :func:`lanczos`
    converges far faster for the same number of products.
    """
    v = v / v.norm().clamp_min(1e-30)
    eig = v.new_zeros(())
    for _ in range(n_iter):
        w = gram(v)
        eig = w.norm()
        v = w / eig.clamp_min(1e-30)
    return eig, v


def top_eigenpair_psd(t: Tensor, squarings: int = 16) -> tuple[Tensor, Tensor]:
    """Largest eigenvalue ``θ`` and unit eigenvector ``y`` of a small symmetric PSD matrix ``t`` ``(k, k)``.

    Power iteration by repeated squaring: ``A ← A²/max|A²|`` ``squarings`` times is ``t^(2^squarings)`` up
    to scale, whose columns point along the top eigenvector (the others shrink by ``(θ₂/θ₁)^(2^squarings)``);
    ``y`` is the column of largest norm, normalised, and ``θ = yᵀ t y``. Where ``θ₁ ≈ θ₂``, ``y`` mixes
    the two and ``θ`` lies between them. Unlike ``torch.linalg.eigh`` (which checks its status on the
    host) it reads nothing back from the device and traces under ``torch.compile``.
    """
    a = t / t.diagonal().sum().clamp_min(1e-300)
    for _ in range(squarings):
        a = a @ a
        a = a / a.abs().amax().clamp_min(1e-300)
    col = a.norm(dim=0).argmax().reshape(1, 1).expand(a.shape[0], 1)
    y = torch.gather(a, 1, col).reshape(-1)
    y = y / y.norm().clamp_min(1e-300)
    return y @ (t @ y), y


def lanczos(
    gram: Callable[[Tensor], Tensor],
    v: Tensor,
    n_iter: int,
    tol: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Largest eigenvalue ``L`` of a PSD operator ``gram`` by Lanczos from ``v`` (full re-orthogonalisation).

    Builds the Krylov basis ``q₁ = v/‖v‖, q_{j+1} ∝ (gram − α_j) q_j − β_{j−1} q_{j−1}`` and returns
    ``(θ, u)``: the largest eigenvalue ``θ`` of the tridiagonal ``T = Qᵀ gram Q`` (a lower bound on ``L``)
    and its unit Ritz vector ``u = Q y`` (shape of ``v``, to warm-start the next call). On the near-flat
    top of a convolution's spectrum the error falls like ``1/k²`` against ``1/k`` for power iteration.

    ``tol = 0``: exactly ``n_iter`` products and no host read (an exhausted Krylov space continues with
    zero vectors; ``T``'s top eigenpair by :func:`top_eigenpair_psd`), so it runs on the device without
    synchronising and traces under ``torch.compile``. ``tol > 0``: eager, it stops once the residual
    bound ``β_k |y_k|`` of ``‖gram u − θu‖`` is below ``tol·θ`` (reading ``β`` and ``eigh`` of ``T`` on
    the host every iteration). ``T`` is float64 in both.
    """
    n_iter = max(int(n_iter), 1)
    if tol > 0:
        return _lanczos_to_tolerance(gram, v, n_iter, tol)
    q = v.reshape(1, -1) / v.norm().clamp_min(1e-30)
    basis, alphas, betas = q, [], []
    for j in range(n_iter):
        w = gram(basis[j].reshape(v.shape)).reshape(-1)
        alpha = torch.dot(w, basis[j])
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
            w = w - basis.t() @ (basis @ w)
        beta = w.norm()
        alive = beta > 1e-7 * alpha.abs().clamp_min(1e-30)  # else the Krylov space is exhausted
        alphas.append(alpha.double())
        if j + 1 < n_iter:
            betas.append(torch.where(alive, beta, torch.zeros_like(beta)).double())
            nxt = torch.where(alive, w / beta.clamp_min(1e-30), torch.zeros_like(w))
            basis = torch.cat([basis, nxt.reshape(1, -1)])
    t = torch.diag(torch.stack(alphas))
    if betas:
        off = torch.stack(betas)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    theta, y = top_eigenpair_psd(t)
    u = basis.t() @ y.to(v.dtype)
    return theta.to(v.dtype), (u / u.norm().clamp_min(1e-30)).reshape(v.shape)


def _lanczos_to_tolerance(gram: Callable[[Tensor], Tensor], v: Tensor, n_iter: int, tol: float) -> tuple[Tensor, Tensor]:
    """:func:`lanczos` with a data-dependent stop (eager; host reads every iteration)."""
    basis = v.new_empty((n_iter, v.numel()))
    basis[0] = v.reshape(-1) / v.norm().clamp_min(1e-30)
    t = torch.zeros((n_iter, n_iter), dtype=torch.float64, device=v.device)
    k = n_iter
    for j in range(n_iter):
        q = basis[: j + 1]
        w = gram(basis[j].reshape(v.shape)).reshape(-1)
        t[j, j] = torch.dot(w, basis[j]).double()
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
            w = w - q.t() @ (q @ w)
        beta = w.norm()
        if j + 1 == n_iter or float(beta) <= 1e-12 * float(t[j, j].abs().clamp_min(1e-30)):
            k = j + 1
            break
        evals, evecs = torch.linalg.eigh(t[: j + 1, : j + 1])
        if float(beta * evecs[-1, -1].abs()) < tol * float(evals[-1]):
            k = j + 1
            break
        t[j, j + 1] = t[j + 1, j] = beta.double()
        basis[j + 1] = w / beta
    evals, evecs = torch.linalg.eigh(t[:k, :k])
    u = basis[:k].t() @ evecs[:, -1].to(v.dtype)
    return evals[-1].to(v.dtype), (u / u.norm().clamp_min(1e-30)).reshape(v.shape)


def csc_gram(
    weight: Tensor, stride: IntPair, padding: IntPair, *,
    groups: int = 1, dilation: IntPair = 1, output_padding: IntPair | None = None, pad_extra: IntPair = 0,
) -> Callable[[Tensor], Tensor]:
    """``v ↦ DᵀD v`` for a convolutional dictionary (``v`` in code space, ``(1, C_out, H', W')``).

    ``output_padding`` names the image size ``D`` maps back to (see :func:`dict_apply`); ``pad_extra`` the
    uneven padding of an even kernel's ``'same'`` (see :func:`dict_transpose`).
    """
    geom = dict(groups=groups, dilation=dilation, pad_extra=pad_extra)
    return lambda v: dict_transpose(
        dict_apply(v, weight, stride, padding, output_padding=output_padding, **geom), weight, stride, padding, **geom)


def linear_gram(weight: Tensor) -> Callable[[Tensor], Tensor]:
    """``v ↦ DᵀD v = (v @ W) @ Wᵀ`` for a matrix dictionary (``v`` of shape ``(1, K)``)."""
    return lambda v: F.linear(v @ weight, weight)


def circular_csc_gram(
    weight: Tensor, stride: IntPair, *, groups: int = 1, dilation: IntPair = 1,
) -> Callable[[Tensor], Tensor]:
    """``v ↦ DᵀD v`` for a dictionary on a torus: code ``(1, C_out, n, m)`` ↔ image ``(1, C_in, s·n, s·m)``.

    Periodic boundaries: ``Dᵀx = conv2d(circular_pad(x), W)`` (the image wrapped by ``d(k−1)`` on the bottom and
    right, no other padding) and ``D`` its exact adjoint (``conv_transpose2d``, the wrapped rows folded back).
    Its spectrum is the union over the grid's frequencies ``ω`` of the spectra of ``P(ω)ᴴP(ω)`` (``P`` the
    dictionary's ``C_out × C_in·s²`` polyphase symbol), so its top eigenvalue approaches from below the
    supremum over frequencies, which bounds ``L`` of the zero-padded ``D`` at every input size. Needs
    ``s·n > d(k−1)`` (and the same across).
    """
    s, d = _pair(stride), _pair(dilation)
    e = tuple(d[i] * (weight.shape[2 + i] - 1) for i in range(2))

    def dt(x: Tensor) -> Tensor:
        xp = F.pad(x, (0, e[1], 0, e[0]), mode="circular") if any(e) else x
        return F.conv2d(xp, weight, None, s, 0, d, groups)

    def dz(z: Tensor) -> Tensor:
        full = F.conv_transpose2d(z, weight, None, s, 0, (s[0] - 1, s[1] - 1), groups, d)
        h, w = full.shape[-2] - e[0], full.shape[-1] - e[1]
        out = full[..., :h, :w].clone()
        out[..., : e[0], :] += full[..., h:, :w]
        out[..., :, : e[1]] += full[..., :h, w:]
        out[..., : e[0], : e[1]] += full[..., h:, w:]
        return out

    return lambda v: dt(dz(v))

"""``SparseCodingLinear``: sparse coding over the last dimension, with the lifecycle of :mod:`.csc`."""

from __future__ import annotations

from typing import Unpack

import torch
import torch.nn as nn
from torch import Tensor

from ..errors import UsageError
from . import functional as SF
from . import spectral as SP
from .sparse_coding import _SparseCoding


class SparseCodingLinear(_SparseCoding):
    """Sparse coding over the last dimension (the official 1-D layer): ``(N, D)`` or ``(N, T, D)`` → ``(…, K)``.

    Dictionary ``D = weightᵀ`` (``weight`` ``(K, D·expansion)``); ``z = argmin λ‖z‖₁ + μ/2‖z‖² + ½‖x − Dz‖²``.
    The coding options are keyword-only (:class:`~.functional.CodingOptions`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **coding: Unpack[SF.CodingOptions],
    ) -> None:
        super().__init__(device=device, dtype=dtype, **coding)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features * self.expansion, device=device, dtype=dtype))
        self.reset_parameters()

    def _gram(self):
        return SP.linear_gram(self.weight.detach().float())

    def _free_gram(self):
        """``DᵀD`` (no input size to depend on: the init step size is the exact one)."""
        return SP.linear_gram(self.weight.detach().float()), (1, self.out_features)

    def _code_shape(self, x: Tensor) -> tuple[int, ...]:
        return (1, self.out_features)

    def _flat(self, x: Tensor) -> Tensor:
        if x.dim() not in (2, 3):
            raise UsageError(f"SparseCodingLinear expects (N, D) or (N, T, D) input, got shape {tuple(x.shape)}")
        x = x.reshape(-1, x.shape[-1])
        return x if self.expansion == 1 else x.repeat(1, self.expansion)

    def _flat_lmbd(self, x: Tensor) -> float | Tensor:
        lmbd = self._lmbd_for(x)
        if isinstance(lmbd, Tensor) and lmbd.numel() > 1 and x.dim() == 3:
            lmbd = lmbd.reshape(-1, 1).repeat_interleave(x.shape[1], 0)
        elif isinstance(lmbd, Tensor) and lmbd.numel() > 1:
            lmbd = lmbd.reshape(-1, 1)
        return lmbd

    def forward(self, x: Tensor) -> Tensor:
        self._prepare_forward(x)
        z = SF.linear_fista(
            self._flat(x), self.weight, self._coding_step_size().to(x.dtype), self._flat_lmbd(x), mu=self.mu,
            n_steps=self.n_steps, non_negative=self.non_negative,
        )
        return z.reshape(*x.shape[:-1], self.out_features)

    def decode(self, z: Tensor) -> Tensor:
        """``D z`` over the last dimension: ``(…, K)`` → ``(…, D)``."""
        x_hat = z @ self.weight
        if self.expansion > 1:
            x_hat = x_hat.unflatten(-1, (self.expansion, self.in_features)).mean(-2)
        return x_hat

    def objective(self, x: Tensor, z: Tensor) -> Tensor:
        """Per-row lasso objective, shape ``(M,)`` with ``M`` = rows of the flattened input."""
        xf, zf = self._flat(x), z.reshape(-1, self.out_features)
        return SF.lasso_objective(xf, zf, zf @ self.weight, self._flat_lmbd(x), self.mu)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {self.extra_repr_common()}"

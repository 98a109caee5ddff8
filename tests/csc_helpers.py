"""Test helpers shared by the visualization tests."""

from __future__ import annotations

import torch
import torch.nn as nn

from sdnet_cli.layers import CSCConv2d
from sdnet_cli.layers import functional as SF
from sdnet_cli.layers import spectral as SP


def quick_step_sizes(model: nn.Module, iters: int = 20) -> nn.Module:
    """Store ``0.9 / L`` in every CSC layer (short power iteration on a 4×4 code), so that the first forward
    does not run the Lanczos set-up; the loaded value is then used as stored (eval mode)."""
    state = model.state_dict()
    g = torch.Generator().manual_seed(0)
    for name, m in model.named_modules():
        if isinstance(m, CSCConv2d):
            v = torch.randn(1, m.out_channels, 4, 4, generator=g)
            eig, _ = SP.power_iteration(SP.csc_gram(m.weight.detach(), m.stride, m.padding), v, iters)
            state[f"{name}.step_size"] = 0.9 / eig
    model.load_state_dict(state)
    return model


def exact_step_size(layer: CSCConv2d, input_shape: tuple[int, ...]) -> float:
    """``0.9 / L`` with ``L`` the top eigenvalue of ``D Dᵀ`` on one input of ``input_shape`` ``(C, H, W)``:
    scipy's ARPACK Lanczos in float64 on the image side (independent of the layer's own estimate)."""
    import numpy as np
    from scipy.sparse.linalg import LinearOperator, eigsh

    w = layer.weight.detach().double().cpu()
    shape = (1, input_shape[0] * layer.expansion, *input_shape[1:])
    n = int(np.prod(shape))

    def matvec(v: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(v)).reshape(shape)
        code = SF.dict_transpose(x, w, layer.stride, layer.padding)
        return SF.dict_apply(code, w, layer.stride, layer.padding).reshape(-1).numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    return 0.9 / float(eigsh(op, k=1, which="LA", tol=1e-10, v0=np.ones(n))[0][0])

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


def adjoint_decode(layer: CSCConv2d, y: torch.Tensor, x_shape: tuple[int, ...]) -> torch.Tensor:
    """``D(y − b)`` computed independently of the layer's decoder: the gradient in ``x`` of ``⟨conv2d(x), y − b⟩``
    (autograd of the conv, the adjoint by definition), on an input of ``x_shape`` ``(N, C, H, W)``; with
    ``expansion`` > 1 the mean over the stacked copies (the gradient sums them)."""
    code = (y if layer.bias is None else y - layer.bias.reshape(1, -1, 1, 1)).detach()
    x = torch.zeros(x_shape, dtype=code.dtype, requires_grad=True)
    with torch.enable_grad():
        out = torch.nn.functional.conv2d(x.repeat(1, layer.expansion, 1, 1), layer.weight.detach(), None,
                                         layer.stride, layer.padding, layer.dilation, layer.groups)
        (out * code).sum().backward()
    return x.grad / layer.expansion


def bn_inverse_by_hand(bn: nn.BatchNorm2d, y: torch.Tensor) -> torch.Tensor:
    """``(y − β) / γ · √(var + ε) + mean`` with the running statistics, written out."""
    view = (1, -1, 1, 1)
    scale = torch.sqrt(bn.running_var + bn.eps).view(view) / bn.weight.view(view)
    return (y - bn.bias.view(view)) * scale + bn.running_mean.view(view)

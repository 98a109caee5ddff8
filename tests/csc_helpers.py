"""Test helpers shared by the visualization tests."""

from __future__ import annotations

import torch
import torch.nn as nn

from sdnet_cli.layers import CSCConv2d
from sdnet_cli.layers import functional as SF


def quick_step_sizes(model: nn.Module, iters: int = 20) -> nn.Module:
    """Store ``0.9 / L`` in every CSC layer (short power iteration on a 4×4 code), so that the first forward
    does not run the 500-iteration estimate; the loaded value is then used as stored (eval mode)."""
    state = model.state_dict()
    g = torch.Generator().manual_seed(0)
    for name, m in model.named_modules():
        if isinstance(m, CSCConv2d):
            v = torch.randn(1, m.out_channels, 4, 4, generator=g)
            eig, _ = SF.power_iteration(SF.csc_gram(m.weight.detach(), m.stride, m.padding), v, iters)
            state[f"{name}.step_size"] = 0.9 / eig
    model.load_state_dict(state)
    return model

"""Whole-stack inversion of an ``sdnet*_all`` model without shortcut (the paper's decoded hidden features).

Such a model is a chain of CSC layers and BatchNorms only (docs/design.md §1)::

    stem (CIFAR)     layer0 = [CSC 3×3, BN]
    stem (ImageNet)  layer0 = [CSC 7×7/2, BN, CSC 3×3/2]
    block            bn2(conv2(bn1(conv1(x))))

so a hidden feature ``h`` at any point can be mapped back to the input space by running the chain
backwards: a BatchNorm ``y = γ(x − m)/√(v + ε) + β`` (running statistics, eval mode) is inverted
exactly by ``x = (y − β)/γ · √(v + ε) + m``, and a CSC layer by its decoder ``x ≈ D z``.
A point is named like a module: ``layer0`` (end of the stem), ``layer2`` (end of a stage),
``layer2.1`` (after one block) or any CSC/BN module name such as ``layer0.1``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from ..layers.csc import CSCConv2d
from ..models.resnet import BasicBlock, ResNet
from .probe import csc_io, require_csc
from ..errors import UsageError

Op = tuple[str, nn.Module]


def inverse_batchnorm(bn: nn.BatchNorm2d, y: Tensor) -> Tensor:
    """Exact inverse of an eval-mode BatchNorm: ``(y − β)/γ · √(v + ε) + m`` (shape of ``y``)."""
    if bn.running_mean is None or bn.running_var is None:
        raise UsageError("BatchNorm without running statistics cannot be inverted")
    shape = (1, -1) + (1,) * (y.dim() - 2)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_mean)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    scale = (bn.running_var + bn.eps).sqrt() / gamma
    return (y - beta.view(shape)) * scale.view(shape) + bn.running_mean.view(shape)


def _not_invertible(why: str) -> UsageError:
    return UsageError(
        f"whole-stack inversion needs an sdnet18_all/sdnet34_all model built with shortcut=False: {why}; "
        "use --decode layer for single-layer decoding (D z of the first CSC layer)"
    )


def stack_ops(model: nn.Module) -> list[Op]:
    """The model's feature extractor as an invertible chain ``[(module name, CSC layer or BN), …]``.

    Raises ``ValueError`` (saying why) for a ResNet, an SDNet with plain convolutions, residual shortcuts,
    ReLUs or pooling in the chain.
    """
    if not isinstance(model, ResNet):
        raise _not_invertible(f"{type(model).__name__} is not an sdnet ResNet")
    require_csc(model)
    ops: list[Op] = []
    for i, m in enumerate(model.layer0):
        if not isinstance(m, (CSCConv2d, nn.BatchNorm2d)):
            raise _not_invertible(f"the stem holds {type(m).__name__} (layer0.{i}), which has no inverse")
        ops.append((f"layer0.{i}", m))
    for s, stage in enumerate(model.stages()[1:], start=1):
        for b, block in enumerate(stage):
            name = f"layer{s}.{b}"
            if not isinstance(block, BasicBlock):
                raise _not_invertible(f"{name} is a {type(block).__name__}")
            if not (isinstance(block.conv1, CSCConv2d) and isinstance(block.conv2, CSCConv2d)) or block.relu_mid:
                raise _not_invertible(f"{name} uses ordinary convolutions and ReLUs (only the stem is a CSC layer)")
            if block.shortcut is not None:
                raise _not_invertible(f"{name} has a residual shortcut (the model was built with shortcut=True)")
            ops += [(f"{name}.conv1", block.conv1), (f"{name}.bn1", block.bn1),
                    (f"{name}.conv2", block.conv2), (f"{name}.bn2", block.bn2)]
    return ops


def default_points(model: nn.Module) -> list[str]:
    """The stem and the end of each stage: ``['layer0', 'layer1', …, 'layer4']``."""
    if isinstance(model, ResNet):
        return [f"layer{i}" for i in range(len(model.stages()))]
    return [n for n, _ in require_csc(model)][:1]


def point_depth(ops: list[Op], point: str) -> int:
    """Number of ops applied to reach ``point``: one past the last op named ``point`` or inside it."""
    hits = [i for i, (name, _) in enumerate(ops) if name == point or name.startswith(point + ".")]
    if not hits:
        blocks = sorted({n.rsplit(".", 1)[0] for n, _ in ops if not n.startswith("layer0")})
        valid = ["layer0"] + sorted({b.split(".")[0] for b in blocks}) + blocks
        raise UsageError(f"unknown feature point {point!r}; valid: {', '.join(dict.fromkeys(valid))} "
                         "(or a CSC/BN module name)")
    return hits[-1] + 1


@torch.no_grad()
def forward_ops(ops: list[Op], x: Tensor) -> Tensor:
    """Run the chain forward (each op's ``forward``)."""
    for _, m in ops:
        x = m(x)
    return x


@torch.no_grad()
def inverse_ops(ops: list[Op], h: Tensor) -> Tensor:
    """Map a hidden feature back through the chain: BN⁻¹ and ``D z``, last op first."""
    for _, m in reversed(ops):
        h = m.decode(h) if isinstance(m, CSCConv2d) else inverse_batchnorm(m, h)
    return h


@torch.no_grad()
def invert_features(model: nn.Module, x: Tensor, points: list[str] | None = None) -> dict[str, Tensor]:
    """For each point, its feature of ``x`` decoded back to input space: ``{point: (N, C_in, H, W)}``.

    ``x`` is the normalised model input ``(N, C_in, H, W)``; the model must be in eval mode.
    """
    if model.training:
        raise UsageError("put the model in eval mode (model.eval()) before inverting: BN uses running statistics")
    ops = stack_ops(model)
    points = points or default_points(model)
    depths = [point_depth(ops, p) for p in points]
    out: dict[str, Tensor] = {}
    h, done = x, 0
    for point, depth in sorted(zip(points, depths), key=lambda t: t[1]):
        h = forward_ops(ops[done:depth], h)
        done = depth
        out[point] = inverse_ops(ops[:depth], h)
    return {p: out[p] for p in points}


@torch.no_grad()
def decode_single_layer(model: nn.Module, x: Tensor, which: int = 0) -> tuple[Tensor, Tensor]:
    """``(x_l, D z_l)`` for the ``which``-th CSC layer (0 = first, image space): its input and one-layer decoding."""
    rec = csc_io(model, x, upto=which + 1)[which]
    return rec.input, rec.layer.decode(rec.code)

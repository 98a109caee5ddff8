"""One ResNet (BasicBlock, CIFAR or ImageNet stem) with the convolution layer injected.

``stem_conv`` and ``block_conv`` are factories with the ``nn.Conv2d`` signature; an SDNet passes
``CSCConv2d``. A ReLU follows only ordinary convolutions: a CSC layer's non-negativity plays its role
(docs/design.md §1). Module names follow the official SDNet checkpoints (``layer0`` … ``layer4``, ``linear``)
so official state dicts map by dropping their ``.dn`` / ``.layers`` wrappers.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..layers.csc import CSCConv2d
from ..errors import UsageError

ConvFactory = Callable[..., nn.Module]
DEFAULT_WIDTH = 64  # first-stage channels of ResNet-18/34, the paper's models and the official checkpoints


def _is_plain(conv: nn.Module) -> bool:
    return not isinstance(conv, CSCConv2d)


class BasicBlock(nn.Module):
    """``bn2(conv2(act(bn1(conv1(x))))) (+ shortcut(x), relu)``; ``act`` is a ReLU for plain convs only."""

    def __init__(self, conv: ConvFactory, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu_mid = _is_plain(self.conv1)
        self.has_shortcut = shortcut
        if shortcut and (stride != 1 or in_planes != planes):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        else:
            self.shortcut = nn.Identity() if shortcut else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x))
        if self.relu_mid:
            out = F.relu(out)
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            return F.relu(out + self.shortcut(x))
        return F.relu(out) if self.relu_mid else out


def _stem(conv: ConvFactory, stem: str, in_chans: int, csc_pool: bool, width: int) -> nn.Sequential:
    """CIFAR: 3×3 conv + BN (+ReLU). ImageNet: 7×7/2 conv + BN (+ReLU) + maxpool, or a 3×3/2 ``conv`` for the pool.
    ``width`` output channels (64 in ResNet-18)."""
    if stem == "cifar":
        first = conv(in_chans, width, 3, stride=1, padding=1, bias=False)
        layers = [first, nn.BatchNorm2d(width)]
    elif stem == "imagenet":
        first = conv(in_chans, width, 7, stride=2, padding=3, bias=False)
        layers = [first, nn.BatchNorm2d(width)]
    else:
        raise UsageError(f"unknown stem {stem!r}; valid: cifar, imagenet")
    if _is_plain(first):
        layers.append(nn.ReLU(inplace=True))
    if stem == "imagenet":
        layers.append(conv(width, width, 3, stride=2, padding=1, bias=False) if csc_pool else nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """ResNet-18/34 family: stem, four stages of :class:`BasicBlock`, global average pool, ``linear``.

    Stage ``i`` has ``width·2^i`` channels (``width`` 64: the paper's models and the official checkpoints; a
    smaller width gives the same architecture at ~``(width/64)²`` of the FLOPs, e.g. for quick experiments)."""

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        stem_conv: ConvFactory,
        block_conv: ConvFactory,
        num_classes: int = 1000,
        stem: str = "cifar",
        in_chans: int = 3,
        shortcut: bool = True,
        csc_pool: bool = False,
        width: int = DEFAULT_WIDTH,
    ) -> None:
        super().__init__()
        self.layer0 = _stem(stem_conv, stem, in_chans, csc_pool, width)
        planes, in_planes = (width, 2 * width, 4 * width, 8 * width), width
        for i, (n, p) in enumerate(zip(layers, planes)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(block_conv, in_planes, p, stride, shortcut))
                in_planes = p
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(8 * width, num_classes)

    def stages(self) -> list[nn.Sequential]:
        """``[layer0, layer1, …, layer4]``."""
        return [self.layer0, self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` → last feature map ``(N, 8·width, H/8, W/8)`` (CIFAR stem) or ``/32`` (ImageNet)."""
        for stage in self.stages():
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` → logits ``(N, num_classes)``."""
        return self.linear(torch.flatten(self.avgpool(self.forward_features(x)), 1))

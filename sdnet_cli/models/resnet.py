"""One ResNet (BasicBlock, CIFAR or ImageNet stem) with the convolution layer injected; it speaks timm's model API.

``stem_conv`` and ``block_conv`` are factories with the ``nn.Conv2d`` signature; an SDNet passes
``CSCConv2d``. A ReLU follows only ordinary convolutions: a CSC layer's non-negativity plays its role
(docs/design.md §1). Module names follow the official SDNet checkpoints (``layer0`` … ``layer4``, ``linear``)
so official state dicts map by dropping their ``.dn`` / ``.layers`` wrappers. timm's API (as its
``resnet.py``): ``num_classes=0`` (no classifier: pooled features), ``global_pool`` (``''``: unpooled),
``num_features``, ``head_hidden_size``, ``forward_features``, ``forward_head``, ``get_classifier``,
``reset_classifier``, ``drop_rate``, ``drop_path_rate``, ``feature_info`` (one tap per stage ``layer0`` …
``layer4``), ``forward_intermediates``, ``prune_intermediate_layers``, ``set_grad_checkpointing``,
``group_matcher`` and ``pretrained_cfg``; the classifier keeps the official name ``linear``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..layers.csc import CSCConv2d
from ..layers.model_ops import csc_layers
from ..errors import UsageError
from .head import GlobalPool, checkpoint_seq, drop_path, linear_or_identity, take_indices
from .stem_type import STEM_TYPES, stem_type_arg
from .timm_cfg import default_pretrained_cfg

ConvFactory = Callable[..., nn.Module]
DEFAULT_WIDTH = 64  # first-stage channels of ResNet-18/34, the paper's models and the official checkpoints


def _is_plain(conv: nn.Module) -> bool:
    return not isinstance(conv, CSCConv2d)


class BasicBlock(nn.Module):
    """``bn2(conv2(act(bn1(conv1(x))))) (+ shortcut(x), relu)``; ``act`` is a ReLU for plain convs only.
    ``drop_path`` (training only): stochastic depth of the residual branch (timm's ``drop_path_rate``)."""

    def __init__(self, conv: ConvFactory, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True,
                 drop_path: float = 0.0, **dd: object) -> None:
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride=stride, padding=1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(planes, **dd)
        self.conv2 = conv(planes, planes, 3, stride=1, padding=1, bias=False, **dd)
        self.bn2 = nn.BatchNorm2d(planes, **dd)
        self.relu_mid = _is_plain(self.conv1)
        self.has_shortcut = shortcut
        self.drop_path_rate = float(drop_path)
        if shortcut and (stride != 1 or in_planes != planes):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False, **dd), nn.BatchNorm2d(planes, **dd)
            )
        else:
            self.shortcut = nn.Identity() if shortcut else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x))
        if self.relu_mid:
            out = F.relu(out)
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            return F.relu(drop_path(out, self.drop_path_rate, self.training) + self.shortcut(x))
        return F.relu(out) if self.relu_mid else out


def _stem(conv: ConvFactory, stem_type: str, in_chans: int, csc_pool: bool, width: int, **dd: object) -> nn.Sequential:
    """CIFAR: 3×3 conv + BN (+ReLU). ImageNet: 7×7/2 conv + BN (+ReLU) + maxpool, or a 3×3/2 ``conv`` for the pool.
    ``width`` output channels (64 in ResNet-18)."""
    if stem_type == "cifar":
        first = conv(in_chans, width, 3, stride=1, padding=1, bias=False, **dd)
    elif stem_type == "imagenet":
        first = conv(in_chans, width, 7, stride=2, padding=3, bias=False, **dd)
    else:
        raise UsageError(f"unknown stem_type {stem_type!r}; valid: {', '.join(STEM_TYPES)}")
    layers = [first, nn.BatchNorm2d(width, **dd)]
    if _is_plain(first):
        layers.append(nn.ReLU(inplace=True))
    if stem_type == "imagenet":
        layers.append(conv(width, width, 3, stride=2, padding=1, bias=False, **dd) if csc_pool
                      else nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(*layers)


STEM_REDUCTION = {"cifar": 1, "imagenet": 4}  # the stem's total stride (layer0's output)
STAGES = ("layer0", "layer1", "layer2", "layer3", "layer4")


class ResNet(nn.Module):
    """ResNet-18/34 family: stem, four stages of :class:`BasicBlock`, global pool, ``linear``.

    Stage ``i`` has ``width·2^i`` channels (``width`` 64: the paper's models and the official checkpoints; a
    smaller width gives the same architecture at ~``(width/64)²`` of the FLOPs, e.g. for quick experiments).
    ``num_classes=0``: no classifier (``forward`` gives the pooled features); ``global_pool``: ``avg`` (the
    paper's), ``max``, ``avgmax``, ``catavgmax`` or ``''`` (none: meant for ``num_classes=0``; timm allows a
    classifier after it, which then sees the unpooled map); ``drop_rate``: dropout before the classifier;
    ``drop_path_rate``: stochastic depth, rising linearly over the blocks to this rate (timm's rule);
    ``device``/``dtype`` for every parameter and buffer; ``stem_type``: ``cifar`` | ``imagenet``
    (:mod:`.stem_type`; ``stem`` is its deprecated name, which warns once)."""

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        stem_conv: ConvFactory,
        block_conv: ConvFactory,
        num_classes: int = 1000,
        stem_type: str = "cifar",
        in_chans: int = 3,
        shortcut: bool = True,
        csc_pool: bool = False,
        width: int = DEFAULT_WIDTH,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        stem: str | None = None,
    ) -> None:
        super().__init__()
        stem_type = stem_type_arg(stem_type, stem)
        _check_rates(drop_rate, drop_path_rate, shortcut)
        dd = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        self.in_chans, self.drop_rate = in_chans, float(drop_rate)
        self.grad_checkpointing = False
        self.layer0 = _stem(stem_conv, stem_type, in_chans, csc_pool, width, **dd)
        planes, in_planes, reduction = (width, 2 * width, 4 * width, 8 * width), width, STEM_REDUCTION[stem_type]
        self.feature_info = [dict(num_chs=width, reduction=reduction, module="layer0")]
        total, index = sum(layers), 0
        for i, (n, p) in enumerate(zip(layers, planes)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                rate = drop_path_rate * index / max(total - 1, 1)
                blocks.append(BasicBlock(block_conv, in_planes, p, stride, shortcut, rate, **dd))
                in_planes, index = p, index + 1
            reduction *= 2 if i > 0 else 1
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=p, reduction=reduction, module=f"layer{i + 1}"))
        self.num_features = 8 * width
        self._set_head(num_classes, global_pool, dd)
        self.pretrained_cfg = self.default_cfg = default_pretrained_cfg(stem_type, in_chans, num_classes=num_classes)

    def _set_head(self, num_classes: int, global_pool: str, dd: dict) -> None:
        self.global_pool = GlobalPool(global_pool)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.linear = linear_or_identity(self.head_hidden_size, num_classes, **dd)
        self.num_classes = num_classes

    def stages(self) -> list[nn.Sequential]:
        """``[layer0, layer1, …, layer4]``."""
        return [getattr(self, name) for name in STAGES]

    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Parameter groups by name (timm's layer-wise learning-rate decay): the stem, then stages or blocks."""
        return dict(stem=r"^layer0\.", blocks=r"^layer([1-4])\." if coarse else r"^layer([1-4])\.(\d+)")

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them (``layer1`` … ``layer4``).

        Refused when a block holds a CSC layer: its training forward updates the step-size buffers, so a
        recomputed forward would not be the one that ran; ``CSCConv2d.recompute`` (``train.recompute``) is
        the memory-lean backward for those layers."""
        if enable and any(csc_layers(s, CSCConv2d) for s in self.stages()[1:]):
            raise UsageError("gradient checkpointing would re-run the CSC layers of the blocks, whose forward "
                             "updates their step sizes; use CSCConv2d.recompute (train.recompute) instead")
        self.grad_checkpointing = bool(enable)

    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        """The classifier (``nn.Identity`` when there is none), or its name ``'linear'``."""
        return "linear" if name_only else self.linear

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for ``num_classes`` (0: none) on the same device/dtype; ``global_pool=None`` keeps
        the pooling."""
        param = next(self.parameters(), None)
        dd = {"device": param.device, "dtype": param.dtype} if param is not None else {}
        self._set_head(num_classes, self.global_pool.pool_type if global_pool is None else global_pool, dd)
        self.global_pool.train(self.training)
        self.linear.train(self.training)

    def _run(self, stages: list[nn.Module], x: Tensor) -> Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint_seq(stages, x)
        for stage in stages:
            x = stage(x)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` → last feature map ``(N, 8·width, H/8, W/8)`` (CIFAR stem) or ``/32`` (ImageNet)."""
        return self._run(self.stages()[1:], self.layer0(x))

    def forward_intermediates(self, x: Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
                              ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """The outputs of the stages ``indices`` selects (``feature_info`` order; ``None``: all five, an int
        ``n``: the last ``n``), with the final feature map unless ``intermediates_only``; ``stop_early``
        stops after the last one taken. ``norm`` is accepted for timm (a ResNet has no final norm)."""
        if output_fmt != "NCHW":
            raise UsageError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        taken, last = take_indices(len(STAGES), indices)
        stages = self.stages()[: last + 1] if stop_early else self.stages()
        intermediates = []
        for i, stage in enumerate(stages):
            x = self._run([stage], x) if i else stage(x)
            if i in taken:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last tap ``indices`` selects (and the classifier when ``prune_head`` or
        stages went); returns the absolute tap indices."""
        taken, last = take_indices(len(STAGES), indices)
        for name in STAGES[last + 1:]:
            setattr(self, name, nn.Sequential())
        if last < len(STAGES) - 1:
            self.num_features = self.head_hidden_size = self.feature_info[last]["num_chs"]
        if prune_head or last < len(STAGES) - 1:
            self.reset_classifier(0, "")
        return taken

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature map → pooled features (``pre_logits``; dropout ``drop_rate`` in training) → logits."""
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.linear(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` → logits ``(N, num_classes)`` (pooled features without a classifier)."""
        return self.forward_head(self.forward_features(x))


def _check_rates(drop_rate: float, drop_path_rate: float, shortcut: bool) -> None:
    for name, rate in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise UsageError(f"{name} must be a number in [0, 1), got {rate!r}")
    if drop_path_rate and not shortcut:
        raise UsageError("drop_path_rate needs the residual shortcut (stochastic depth drops the residual branch)")

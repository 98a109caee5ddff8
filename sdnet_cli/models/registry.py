"""Model registry: names → one-line builders over :class:`~sdnet_cli.models.resnet.ResNet`.

Names with a source prefix, ``torchvision:NAME`` and ``timm:NAME`` (optionally ``+stem`` / ``+all``), go to
:mod:`.ecosystem` everywhere a name is accepted (:func:`check_model_name`, :func:`model_arg_names`,
:func:`create_model`); :func:`list_models` lists the registry's own models.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Callable

import torch.nn as nn

from ..layers.csc import CSCConv2d
from ..layers.model_ops import csc_layers
from .ecosystem import ECOSYSTEM_ARGS, check_ecosystem_name, create_ecosystem_model, is_ecosystem_name
from .resnet import ResNet
from ..errors import UsageError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}

CSC_KEYS = ("lmbd", "mu", "n_steps", "non_negative", "expansion")


def register(name: str, description: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a builder under ``name``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def describe_models() -> list[dict[str, Any]]:
    """One row per model: name, description and parameter counts for CIFAR-10 and ImageNet heads."""
    rows = []
    for name in list_models():
        cifar = create_model(name, num_classes=10, stem="cifar")
        imnet = create_model(name, num_classes=1000, stem="imagenet")
        rows.append({
            "name": name,
            "description": _DESCRIPTIONS[name],
            "params_cifar10": sum(p.numel() for p in cifar.parameters()),
            "params_imagenet": sum(p.numel() for p in imnet.parameters()),
            "csc_layers": len(csc_layers(cifar, CSCConv2d)),
        })
    return rows


def check_model_name(name: str) -> None:
    """Raise ``UsageError`` naming the valid models (and the closest one) when ``name`` is unknown."""
    if is_ecosystem_name(name):
        return check_ecosystem_name(name)
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown model {name!r}{hint}; valid: {', '.join(list_models())}, "
                         "or torchvision:NAME / timm:NAME")


_BASE_ARGS = frozenset({"num_classes", "stem", "in_chans", "width"})


def model_arg_names(name: str) -> frozenset[str]:
    """The keyword arguments the builder of model ``name`` accepts (for config.json checks)."""
    check_model_name(name)
    if is_ecosystem_name(name):
        return ECOSYSTEM_ARGS
    if name.startswith("resnet"):
        return _BASE_ARGS
    extra = {"shortcut"} | set(CSC_KEYS)
    return _BASE_ARGS | frozenset(extra)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model('sdnet18', num_classes=10, stem='cifar', lmbd=0.1)``.

    Keyword arguments: ``num_classes``, ``stem`` (``cifar`` | ``imagenet``), ``in_chans``, ``width`` (channels of
    the first stage, default 64), ``shortcut``
    (the ``_all`` models) and the CSC options ``lmbd``, ``n_steps``, ``mu``, ``non_negative``, ``expansion``;
    timm's ``global_pool``, ``drop_rate``, ``drop_path_rate``, ``device``, ``dtype`` (:class:`.resnet.ResNet`;
    ``num_classes=0``: no classifier, the pooled features).
    ``torchvision:NAME`` / ``timm:NAME`` also take ``convert`` and ``init`` (see :mod:`.ecosystem`).
    """
    if is_ecosystem_name(name):
        return create_ecosystem_model(name, **kwargs)
    check_model_name(name)
    return _REGISTRY[name](**kwargs)


def _csc(**csc: Any) -> Callable[..., nn.Module]:
    return functools.partial(CSCConv2d, **csc)


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    csc = {k: kwargs.pop(k) for k in CSC_KEYS if k in kwargs}
    return csc, kwargs


def _resnet(layers: tuple[int, int, int, int], **kw: Any) -> nn.Module:
    csc, rest = _split(dict(kw))
    if csc:
        raise UsageError(f"{', '.join(csc)} only apply to SDNet models (a ResNet has no CSC layer)")
    return ResNet(layers, nn.Conv2d, nn.Conv2d, **rest)


def _sdnet(layers: tuple[int, int, int, int], **kw: Any) -> nn.Module:
    csc, rest = _split(dict(kw))
    if "shortcut" in rest and not rest.pop("shortcut"):
        raise UsageError("shortcut=False applies to the *_all models only")
    return ResNet(layers, _csc(**csc), nn.Conv2d, **rest)


def _sdnet_all(layers: tuple[int, int, int, int], **kw: Any) -> nn.Module:
    csc, rest = _split(dict(kw))
    return ResNet(layers, _csc(**csc), _csc(**csc), csc_pool=True, **rest)


R18, R34 = (2, 2, 2, 2), (3, 4, 6, 3)


@register("resnet18", "ResNet-18 baseline (ordinary convolutions)")
def resnet18(**kw: Any) -> nn.Module:
    return _resnet(R18, **kw)


@register("resnet34", "ResNet-34 baseline (ordinary convolutions)")
def resnet34(**kw: Any) -> nn.Module:
    return _resnet(R34, **kw)


@register("sdnet18", "SDNet-18: ResNet-18 whose stem conv is a CSC layer")
def sdnet18(**kw: Any) -> nn.Module:
    return _sdnet(R18, **kw)


@register("sdnet34", "SDNet-34: ResNet-34 whose stem conv is a CSC layer")
def sdnet34(**kw: Any) -> nn.Module:
    return _sdnet(R34, **kw)


@register("sdnet18_all", "SDNet-18-all: every 3x3 conv is a CSC layer (shortcut optional)")
def sdnet18_all(**kw: Any) -> nn.Module:
    return _sdnet_all(R18, **kw)


@register("sdnet34_all", "SDNet-34-all: every 3x3 conv is a CSC layer (shortcut optional)")
def sdnet34_all(**kw: Any) -> nn.Module:
    return _sdnet_all(R34, **kw)

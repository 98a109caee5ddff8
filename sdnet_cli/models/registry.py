"""Model registry: names → one-line builders over :class:`~sdnet_cli.models.resnet.ResNet`.

Each builder is registered with the model arguments it accepts (``@register(name, description, args)``):
:func:`model_arg_names` (the keys ``config.json`` may hold) and :func:`create_model` read that record.

Names with a source prefix, ``torchvision:NAME`` and ``timm:NAME`` (optionally ``+stem`` / ``+all``), go to
:mod:`.ecosystem` everywhere a name is accepted (:func:`check_model_name`, :func:`model_arg_names`,
:func:`create_model`); :func:`list_models` lists the registry's own models.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Callable, Iterable

import torch.nn as nn

from ..conversion import CSC_ARGS
from ..layers.csc import CSCConv2d
from ..layers.model_ops import csc_layers
from .ecosystem import ECOSYSTEM_ARGS, check_ecosystem_name, create_ecosystem_model, is_ecosystem_name, split_name
from .resnet import ResNet
from .stem_type import stem_type_kwargs
from ..errors import UnknownArgumentError, UsageError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_ARGS: dict[str, frozenset[str]] = {}

RUNTIME_ARGS = frozenset({"global_pool", "drop_rate", "drop_path_rate", "device", "dtype"})
"""Options of :class:`.resnet.ResNet` every builder passes on (timm's); not model arguments of ``config.json``."""


def register(name: str, description: str, args: Iterable[str]) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a builder under ``name``; ``args``: the model arguments it accepts (besides
    :data:`RUNTIME_ARGS`), the one record :func:`model_arg_names` and :func:`create_model` read."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description
        _ARGS[name] = frozenset(args)
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def describe_models() -> list[dict[str, Any]]:
    """One row per model: name, description and parameter counts for CIFAR-10 and ImageNet heads."""
    rows = []
    for name in list_models():
        cifar = create_model(name, num_classes=10, stem_type="cifar")
        imnet = create_model(name, num_classes=1000, stem_type="imagenet")
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


_BASE_ARGS = frozenset({"num_classes", "stem_type", "in_chans", "width"})

SDNET_ARGS = _BASE_ARGS | frozenset(CSC_ARGS)
SDNET_ALL_ARGS = SDNET_ARGS | {"shortcut"}


def model_arg_names(name: str) -> frozenset[str]:
    """The model arguments the builder of ``name`` accepts, as registered (what ``config.json`` may hold)."""
    if is_ecosystem_name(name):
        split_name(name)
        return ECOSYSTEM_ARGS
    if name not in _ARGS:
        check_model_name(name)  # raises, naming the valid models
    return _ARGS[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model('sdnet18', num_classes=10, stem_type='cifar', lmbd=0.1)``.

    Keyword arguments: ``num_classes``, ``stem_type`` (``cifar`` | ``imagenet``), ``in_chans``, ``width`` (channels of
    the first stage, default 64), ``shortcut``
    (the ``_all`` models) and the CSC options (:data:`~sdnet_cli.conversion.CSC_ARGS`: ``lmbd``, ``n_steps``,
    ``mu``, ``non_negative``, ``expansion``, ``power_iters``; SDNet models only), as registered
    (:func:`model_arg_names`);
    timm's ``global_pool``, ``drop_rate``, ``drop_path_rate``, ``device``, ``dtype`` (:class:`.resnet.ResNet`;
    ``num_classes=0``: no classifier, the pooled features).
    ``torchvision:NAME`` / ``timm:NAME`` also take ``convert`` and ``init`` (see :mod:`.ecosystem`).
    ``stem`` is the deprecated name of ``stem_type`` (warns once).
    """
    kwargs = stem_type_kwargs(kwargs)
    if is_ecosystem_name(name):
        return create_ecosystem_model(name, **kwargs)
    if name not in _REGISTRY:
        check_model_name(name)  # raises, naming the valid models (a checked name is only looked up)
    _check_kwargs(name, set(kwargs) - _ARGS[name] - RUNTIME_ARGS)
    return _REGISTRY[name](**kwargs)


def _check_kwargs(name: str, extra: set[str]) -> None:
    """``UnknownArgumentError`` (a ``UsageError`` and a ``TypeError``) naming the arguments ``name``'s builder
    does not take (``extra``), if any."""
    if not extra:
        return
    csc = sorted(extra & set(CSC_ARGS))
    if csc:
        raise UnknownArgumentError(f"{', '.join(csc)} only apply to SDNet models ({name} has no CSC layer)")
    if "shortcut" in extra:
        raise UnknownArgumentError(f"shortcut applies to the *_all models only, not {name}")
    raise UnknownArgumentError(f"{', '.join(sorted(extra))}: not an argument of {name} (accepted: "
                               f"{', '.join(sorted(_ARGS[name] | RUNTIME_ARGS))})")


def _csc(**csc: Any) -> Callable[..., nn.Module]:
    return functools.partial(CSCConv2d, **csc)


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    csc = {k: kwargs.pop(k) for k in CSC_ARGS if k in kwargs}
    return csc, kwargs


def _resnet(layers: tuple[int, int, int, int], **kw: Any) -> nn.Module:
    return ResNet(layers, nn.Conv2d, nn.Conv2d, **kw)


def _sdnet(layers: tuple[int, int, int, int], **kw: Any) -> nn.Module:
    csc, rest = _split(dict(kw))
    return ResNet(layers, _csc(**csc), nn.Conv2d, **rest)


def _sdnet_all(layers: tuple[int, int, int, int], **kw: Any) -> nn.Module:
    csc, rest = _split(dict(kw))
    return ResNet(layers, _csc(**csc), _csc(**csc), csc_pool=True, **rest)


R18, R34 = (2, 2, 2, 2), (3, 4, 6, 3)


@register("resnet18", "ResNet-18 baseline (ordinary convolutions)", _BASE_ARGS)
def resnet18(**kw: Any) -> nn.Module:
    return _resnet(R18, **kw)


@register("resnet34", "ResNet-34 baseline (ordinary convolutions)", _BASE_ARGS)
def resnet34(**kw: Any) -> nn.Module:
    return _resnet(R34, **kw)


@register("sdnet18", "SDNet-18: ResNet-18 whose stem conv is a CSC layer", SDNET_ARGS)
def sdnet18(**kw: Any) -> nn.Module:
    return _sdnet(R18, **kw)


@register("sdnet34", "SDNet-34: ResNet-34 whose stem conv is a CSC layer", SDNET_ARGS)
def sdnet34(**kw: Any) -> nn.Module:
    return _sdnet(R34, **kw)


@register("sdnet18_all", "SDNet-18-all: every 3x3 conv is a CSC layer (shortcut optional)", SDNET_ALL_ARGS)
def sdnet18_all(**kw: Any) -> nn.Module:
    return _sdnet_all(R18, **kw)


@register("sdnet34_all", "SDNet-34-all: every 3x3 conv is a CSC layer (shortcut optional)", SDNET_ALL_ARGS)
def sdnet34_all(**kw: Any) -> nn.Module:
    return _sdnet_all(R34, **kw)

"""Models by name from the ecosystem: ``torchvision:NAME`` and ``timm:NAME``, optionally converted to CSC.

``create_ecosystem_model("torchvision:resnet50", num_classes=10, convert="stem", lmbd=0.1)`` builds the
torchvision (``weights=None``) or timm (``pretrained=False``) model locally — no weights are ever downloaded —
and, with ``convert``, replaces its convolutions by CSC layers (:func:`sdnet_cli.conversion.convert`).
``convert`` is ``"stem"``, ``"all"`` or a list of module names; a name may carry it as a suffix,
``torchvision:resnet50+stem``, which is the same model. These models keep their own ImageNet-style stem:
``stem_type`` is ``"imagenet"``. timm is optional: without it, ``timm:`` names are a clear :class:`UsageError`.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch.nn as nn

from ..conversion import CSC_ARGS, check_csc_args, convert as convert_model
from ..errors import UsageError

PREFIXES = ("torchvision", "timm")
CONVERT_SUFFIXES = ("stem", "all")
ECOSYSTEM_ARGS = frozenset({"num_classes", "stem_type", "in_chans", "convert", "init", *CSC_ARGS})


def is_ecosystem_name(name: str) -> bool:
    """Whether ``name`` has a ``prefix:`` (then it is ours to resolve, valid or not)."""
    return isinstance(name, str) and ":" in name


def parse_convert(text: str) -> str | list[str]:
    """``model.convert`` as config text → ``convert``: ``'stem'`` / ``'all'`` as is, else a comma-separated
    list of module names (``'conv1,layer1.0.conv1'`` → ``['conv1', 'layer1.0.conv1']``; checked when the
    model is built)."""
    if text in CONVERT_SUFFIXES:
        return text
    names = [n.strip() for n in text.split(",")]
    if not text.strip() or not all(names):
        raise UsageError(f"model.convert must be one of {', '.join(CONVERT_SUFFIXES)} or comma-separated module "
                         f"names (e.g. conv1,layer1.0.conv1), got {text!r}")
    return names


def split_name(name: str) -> tuple[str, str, str | None]:
    """``'torchvision:resnet50+stem'`` → ``('torchvision', 'resnet50', 'stem')``; checks the prefix and suffix."""
    prefix, _, rest = name.partition(":")
    if prefix not in PREFIXES:
        raise UsageError(f"unknown model source {prefix!r} in {name!r}; use torchvision:NAME or timm:NAME")
    base, plus, where = rest.partition("+")
    if plus and where not in CONVERT_SUFFIXES:
        raise UsageError(f"{name!r}: the suffix after '+' must be one of {', '.join(CONVERT_SUFFIXES)} (the layers to convert)")
    if not base:
        raise UsageError(f"{name!r} names no model; e.g. torchvision:resnet18 or timm:convnext_nano")
    return prefix, base, where or None


def _import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise UsageError("timm: models need the timm package: pip install 'sdnet[timm]' (or pip install timm)") from None
    return timm


def available(prefix: str) -> list[str]:
    """The classification model names ``prefix`` (``torchvision`` | ``timm``) can build, sorted."""
    if prefix == "timm":
        return sorted(_import_timm().list_models())
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_ecosystem_name(name: str) -> None:
    """``UsageError`` naming close matches when ``name`` is not a model of its source."""
    prefix, base, _ = split_name(name)
    names = available(prefix)
    if base not in names:
        close = difflib.get_close_matches(base, names, n=3)
        hint = f"; did you mean {', '.join(f'{prefix}:{c}' for c in close)}?" if close else ""
        lister = "timm.list_models()" if prefix == "timm" else "torchvision.models.list_models()"
        raise UsageError(f"unknown {prefix} model {base!r}{hint} (list them with {lister})")


def _build_base(prefix: str, base: str, num_classes: int, in_chans: int) -> nn.Module:
    if prefix == "timm":
        return _import_timm().create_model(base, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    if in_chans != 3:
        raise UsageError(f"torchvision models take 3 input channels, got in_chans={in_chans}")
    import torchvision.models

    return torchvision.models.get_model(base, weights=None, num_classes=num_classes)


def create_ecosystem_model(
    name: str,
    *,
    num_classes: int = 1000,
    stem_type: str = "imagenet",
    in_chans: int = 3,
    convert: str | list[str] | None = None,
    init: str = "conv",
    **csc_args: Any,
) -> nn.Module:
    """Build ``name`` (``torchvision:NAME`` / ``timm:NAME`` [``+stem`` | ``+all``]) without pretrained weights.

    ``convert``: which convolutions become CSC layers (``None`` = none); ``init``, ``csc_args`` (``lmbd``,
    ``mu``, ``n_steps``, ``non_negative``, ``expansion``, ``power_iters``) configure them.
    """
    prefix, base, suffix = split_name(name)
    if suffix is not None and convert is not None and convert != suffix:
        raise UsageError(f"{name!r} says convert={suffix!r} but convert={convert!r} was passed")
    where = convert if convert is not None else suffix
    if stem_type != "imagenet":
        raise UsageError(f"{prefix}: models keep their own (ImageNet-style) stem: stem_type must be 'imagenet', "
                         f"got {stem_type!r} ('cifar' applies to the sdnet/resnet models)")
    check_csc_args(csc_args, init)
    if where is None and csc_args:
        raise UsageError(f"{', '.join(sorted(csc_args))} configure CSC layers: also pass convert='stem' or 'all'")
    if isinstance(where, (list, tuple)) and not all(isinstance(n, str) for n in where):
        raise UsageError(f"convert must be 'stem', 'all' or a list of module names, got {where!r}")
    check_ecosystem_name(name)
    model = _build_base(prefix, base, num_classes, in_chans)
    if where is not None:
        model = convert_model(model, list(where) if isinstance(where, (list, tuple)) else where, init=init,
                              input_size=(in_chans, 224, 224), **csc_args)
    return model

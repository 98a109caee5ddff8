"""Checks at the boundary of a model directory: the ``config.json`` schema and the weights.

Each check raises :class:`~sdnet_cli.errors.UsageError` with one sentence saying what is wrong and what to
do, before a model is built or anything is written.

``config.json`` (docs/design.md, model-directory format): an object with ``architecture`` (a registered
model name, e.g. ``sdnet18`` or ``torchvision:resnet18``), ``num_classes`` (an integer ≥ 1), ``stem_type``
(:mod:`.stem_type`; ``stem``, its old name, is still read), ``model_args`` (an object whose keys the builder
accepts — :func:`~sdnet_cli.models.registry.model_arg_names` — with values of the right type and range), ``dataset``, ``mean``/``std`` (lists of ``in_chans`` finite
numbers, ``std > 0``) and ``metrics`` (an object). Other top-level keys are kept for other tools and ignored.

Weights: every tensor the model holds as floating point must be floating point in the file (an int32
tensor is refused, not cast) and finite; integer buffers (``num_batches_tracked``) must be integers.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..checks import is_int, is_real
from ..errors import UsageError
from .registry import check_model_name, model_arg_names
from .stem_type import STEM_TYPES

_TOP_LEVEL_ARGS = ("num_classes", "stem_type")


def _kind(value: Any) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(
        type(value), type(value).__name__)


def _nonneg_number(v: Any) -> str | None:
    return None if is_real(v) and math.isfinite(v) and v >= 0 else "a finite number >= 0"


def _int_at_least(low: int) -> Callable[[Any], str | None]:
    return lambda v: None if is_int(v) and v >= low else f"an integer >= {low}"


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "a non-empty string"


def _convert(v: Any) -> str | None:
    names_ok = isinstance(v, list) and v and all(isinstance(n, str) and n for n in v)
    return None if names_ok or _string(v) is None else "a non-empty string or a list of module names"


ARG_RULES: dict[str, Callable[[Any], str | None]] = {
    "lmbd": _nonneg_number,
    "mu": _nonneg_number,
    "n_steps": _int_at_least(1),
    "non_negative": _boolean,
    "expansion": _int_at_least(1),
    "power_iters": _int_at_least(0),
    "shortcut": _boolean,
    "in_chans": _int_at_least(1),
    "width": _int_at_least(1),
    "convert": _convert,
}
"""What each known ``model_args`` value must be (``None`` = fine, else the expectation)."""


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text[:40]}…" if len(text) > 40 else text


def check_model_args(architecture: str, args: Any) -> None:
    """``model_args`` is an object whose keys ``architecture``'s builder accepts, with valid values."""
    if not isinstance(args, dict):
        raise UsageError(f"model_args must be an object of builder arguments, got {_kind(args)}")
    accepted = model_arg_names(architecture)
    for key, value in args.items():
        if key in _TOP_LEVEL_ARGS:
            raise UsageError(f"model_args.{key} belongs at the top level of config.json, not in model_args")
        if key not in accepted:
            valid = ", ".join(sorted(set(accepted) - set(_TOP_LEVEL_ARGS))) or "none"
            raise UsageError(f"model_args.{key} is not an argument of {architecture} (accepted: {valid})")
        rule = ARG_RULES.get(key)
        expected = rule(value) if rule else None
        if expected is not None:
            raise UsageError(f"model_args.{key} must be {expected}, got {_show(value)} ({_kind(value)})")


def _check_stats(name: str, values: Any, channels: int) -> None:
    if values is None:
        return
    if not isinstance(values, list) or not all(is_real(v) and math.isfinite(v) for v in values):
        raise UsageError(f"{name} must be a list of finite numbers (one per input channel), got {_show(values)}")
    if len(values) != channels:
        raise UsageError(f"{name} has {len(values)} values but the model takes {channels} input channels")
    if name == "std" and any(v <= 0 for v in values):
        raise UsageError(f"std must be > 0 for every channel (inputs are divided by it), got {values}")


def check_config_fields(architecture: Any, num_classes: Any, stem_type: Any, model_args: Any, dataset: Any,
                        mean: Any, std: Any, metrics: Any) -> None:
    """The value checks of a model config (see the module docstring); raises ``UsageError``."""
    if not isinstance(architecture, str) or not architecture:
        raise UsageError(f"architecture must be a model name (see 'sdnet models'), got {_show(architecture)}")
    check_model_name(architecture)
    if not is_int(num_classes) or num_classes < 1:
        raise UsageError(f"num_classes must be an integer >= 1, got {_show(num_classes)} ({_kind(num_classes)})")
    if "stem_type" in model_arg_names(architecture) and stem_type not in STEM_TYPES:
        raise UsageError(f"stem_type must be one of {', '.join(STEM_TYPES)}, got {_show(stem_type)}")
    if not isinstance(stem_type, str):
        raise UsageError(f"stem_type must be a string, got {_show(stem_type)} ({_kind(stem_type)})")
    check_model_args(architecture, model_args)
    if dataset is not None and not isinstance(dataset, str):
        raise UsageError(f"dataset must be a dataset name or null, got {_show(dataset)}")
    if (mean is None) != (std is None):
        raise UsageError("mean and std go together: give both (one value per input channel) or neither")
    channels = model_args.get("in_chans", 3)
    _check_stats("mean", mean, channels)
    _check_stats("std", std, channels)
    if not isinstance(metrics, dict):
        raise UsageError(f"metrics must be an object, got {_kind(metrics)}")


def check_config_object(obj: Any) -> dict[str, Any]:
    """A parsed ``config.json`` must be an object holding ``architecture`` and ``num_classes``; returns it."""
    if not isinstance(obj, dict):
        raise UsageError(f"it holds {_kind(obj)}, not an object with architecture, num_classes, model_args, …")
    missing = [k for k in ("architecture", "num_classes") if k not in obj]
    if missing:
        raise UsageError(f"it lacks {', '.join(missing)}")
    return obj


def check_weights(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str) -> None:
    """Each tensor of ``state`` has the kind (floating / integer) of the model's own and is finite.

    ``own``: the model's state dict; ``state``: the tensors read from ``source`` (same keys, checked before).
    """
    for key, mine in own.items():
        t = state[key]
        if mine.is_floating_point() and not t.is_floating_point():
            raise UsageError(f"{source}: tensor {key} is {str(t.dtype).replace('torch.', '')}, not floating point; "
                             "the weights are damaged or not an sdnet model (re-export them)")
        if not mine.is_floating_point() and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
            raise UsageError(f"{source}: tensor {key} is {str(t.dtype).replace('torch.', '')}, expected an integer "
                             "tensor; the weights are damaged or not an sdnet model")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = "NaN" if bool(torch.isnan(t).any()) else "infinite"
            raise UsageError(f"{source}: tensor {key} holds {bad} values; these weights cannot be used "
                             "(a diverged training run? export a checkpoint from before it diverged)")

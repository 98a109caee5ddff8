"""Value checks of a training configuration: the one home of "can training use this value?".

:mod:`sdnet_cli.config` checks each value's *type* when it is assigned; its
:func:`~sdnet_cli.config.check_config` (whose body is :func:`_check_values` here) checks what types cannot:
ranges and finiteness (λ ≥ 0, lr > 0 and finite, momentum in [0, 1), sizes ≥ what the model's stem can
take, …), choices, model options the model's builder takes, keys that only make sense together, and the kind
of the paths (a run directory that is a file, a data root that is a file). It only reads: nothing is
created, opened or written, so it runs before a run touches anything (at the end of ``resolve_config`` and
again at the start of ``train`` for a config built in Python). Each failure is one
:class:`~sdnet_cli.errors.UsageError` naming the key, the value, what it must be and how to set it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping

from .checks import is_int, is_real
from .errors import UsageError

Rule = Callable[[Any], "str | None"]
"""``rule(value)`` → ``None`` when the value is usable, else what it must be (e.g. ``"an integer >= 1"``)."""


def is_finite(v: Any) -> bool:
    """A finite ``int`` or ``float`` (not a ``bool``)."""
    return is_real(v) and math.isfinite(v)


def int_at_least(low: int) -> Rule:
    """An integer ``v ≥ low``."""
    return lambda v: None if is_int(v) and v >= low else f"an integer >= {low}"


def int_in(low: int, high: int) -> Rule:
    """An integer ``low ≤ v < high``."""
    return lambda v: None if is_int(v) and low <= v < high else f"an integer in [{low}, {high})"


def finite_at_least(low: float) -> Rule:
    """A finite number ``v ≥ low``."""
    return lambda v: None if is_finite(v) and v >= low else f"a finite number >= {low:g}"


def finite_above(low: float) -> Rule:
    """A finite number ``v > low``."""
    return lambda v: None if is_finite(v) and v > low else f"a finite number > {low:g}"


def fraction() -> Rule:
    """A number in ``[0, 1)``."""
    return lambda v: None if is_finite(v) and 0 <= v < 1 else "a number in [0, 1)"


def int_list_at_least(low: int) -> Rule:
    """A list of integers, each ``≥ low``."""
    return lambda v: None if all(is_int(x) and x >= low for x in v) else f"a list of integers >= {low}"


RULES: dict[str, Rule] = {
    "model.lmbd": finite_at_least(0.0),
    "model.mu": finite_at_least(0.0),
    "model.n_steps": int_at_least(1),
    "model.expansion": int_at_least(1),
    "model.width": int_at_least(1),
    "data.in_chans": lambda v: None if v in (1, 3) and is_int(v) else "1 or 3",
    "data.workers": int_at_least(0),
    "data.val_split": fraction(),
    "optim.lr": finite_above(0.0),
    "optim.momentum": fraction(),
    "optim.weight_decay": finite_at_least(0.0),
    "optim.milestones": int_list_at_least(0),
    "optim.gamma": finite_above(0.0),
    "optim.warmup_epochs": finite_at_least(0.0),
    "optim.min_lr": finite_at_least(0.0),
    "optim.label_smoothing": fraction(),
    "optim.grad_clip": finite_at_least(0.0),
    "train.epochs": int_at_least(1),
    "train.batch_size": int_at_least(1),
    "train.eval_batch_size": int_at_least(1),
    "train.seed": int_in(0, 2**32),
    "train.limit_batches": int_at_least(0),
    "train.threads": int_at_least(0),
    "train.checkpoint_every": int_at_least(0),
    "train.step_size_every": int_at_least(0),
}
"""The range of every numeric key (``data.image_size`` depends on the dataset: :func:`_check_image_size`)."""

FLAGS: dict[str, str] = {
    "optim.lr": "--lr", "train.epochs": "--epochs", "train.batch_size": "--batch-size", "data.workers": "--workers",
    "train.seed": "--seed", "data.root": "--data-root", "train.output": "--output", "model.name": "--model",
    "data.dataset": "--dataset", "train.device": "--device",
}
"""The ``sdnet train`` flag that sets a key (named in the error so the user knows what to change)."""

_MISSING = object()


def how_to_set(key: str) -> str:
    """``'set it with --lr or --set optim.lr=VALUE'``."""
    flag = FLAGS.get(key)
    return f"set it with {flag} or --set {key}=VALUE" if flag else f"set it with --set {key}=VALUE"


def value_of(cfg: Any, key: str) -> Any:
    """``cfg.<section>.<name>`` for ``key = 'section.name'`` (a sentinel when the schema lacks the key)."""
    section, name = key.split(".")
    return getattr(getattr(cfg, section, None), name, _MISSING)


def _fail(key: str, value: Any, expected: str) -> UsageError:
    return UsageError(f"{key} must be {expected}, got {value!r}; {how_to_set(key)}")


def _check_convert(cfg: Any) -> None:
    """``model.convert``: unset, or (for torchvision:/timm: models) stem, all or comma-separated module names."""
    from .models.ecosystem import is_ecosystem_name, parse_convert

    if cfg.model.convert is None:
        return
    if not is_ecosystem_name(cfg.model.name):
        raise UsageError(f"model.convert applies to torchvision:NAME / timm:NAME models; {cfg.model.name} has its "
                         "CSC layers already")
    parse_convert(cfg.model.convert)


def _check_image_size(cfg: Any) -> None:
    """``data.image_size`` (``None``: the dataset's) at least the model's minimum
    (:func:`~sdnet_cli.config_sizes.model_min_size`); CIFAR at 32 only."""
    from .config_sizes import RESIZABLE, model_min_size
    from .data.datasets import dataset_info
    from .models.ecosystem import is_ecosystem_name

    name, model = cfg.data.dataset, cfg.model.name
    stem_type = "imagenet" if is_ecosystem_name(model) else dataset_info(name).stem_type  # as model_config records it
    least = model_min_size(model, stem_type)
    native = dataset_info(name).image_size
    size = cfg.data.image_size
    if name not in RESIZABLE and max(size or native, native) < least:
        raise UsageError(f"{model} takes images of at least {least}x{least}; {name} images are used at "
                         f"{native}x{native} only: choose a model that takes them (e.g. sdnet18)")
    if size is None and native < least:
        raise _fail("data.image_size", size, f"an integer >= {least} for {model} ({name} images are "
                    f"{native}x{native}; e.g. {max(least, 32)})")
    if size is None:
        return
    if not is_int(size) or size < least:
        raise _fail("data.image_size", size, f"an integer >= {least} (the smallest input {model} takes with "
                    f"the {stem_type} stem) or null for the dataset's size")
    if name not in RESIZABLE and size != native:
        raise _fail("data.image_size", size, f"{native} or null ({name} images are {native}x{native})")


def _check_names(cfg: Any, choices: Mapping[str, tuple[str, ...]]) -> None:
    from .data.datasets import check_dataset_name
    from .models.registry import check_model_name

    for key, valid in choices.items():
        value = value_of(cfg, key)
        if value is not _MISSING and value not in valid:
            raise _fail(key, value, f"one of {', '.join(valid)}")
    check_dataset_name(cfg.data.dataset)
    check_model_name(cfg.model.name)


def _check_model_options(cfg: Any) -> None:
    """``model.shortcut=false`` and a ``model.width`` other than the default only for builders that take them
    (:func:`~sdnet_cli.models.registry.model_arg_names`)."""
    from .models.registry import model_arg_names
    from .models.resnet import DEFAULT_WIDTH

    m = cfg.model
    accepted = model_arg_names(m.name)
    if not m.shortcut and "shortcut" not in accepted:
        raise UsageError(f"model.shortcut=false applies to the *_all models only, not {m.name}")
    if m.width != DEFAULT_WIDTH and "width" not in accepted:
        raise UsageError(f"model.width applies to the registry models (resnet*, sdnet*), not {m.name}")


def _check_combinations(cfg: Any) -> None:
    import torch

    d, o, t = cfg.data, cfg.optim, cfg.train
    if d.in_chans == 1 and d.dataset != "digits":
        raise UsageError(f"data.in_chans=1 is only available for digits, not {d.dataset} (use 3)")
    if o.schedule == "step" and not o.milestones:
        raise UsageError("optim.schedule=step needs optim.milestones (epochs), e.g. --set optim.milestones=30,60,90")
    if t.amp and (t.device == "cpu" or (t.device == "auto" and not torch.cuda.is_available())):
        raise UsageError("train.amp needs a CUDA device (mixed precision autocast); drop --amp or use --device cuda")


def _check_folder(key: str, path: str | None, expected: str) -> None:
    """``path`` (if set) is a folder or can become one: neither it nor a parent is a file."""
    if path is None:
        return
    p = Path(path).expanduser()
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                what = "is a file" if q == p else f"is inside {q}, which is a file"
                raise UsageError(f"{key} {path} {what}; {FLAGS.get(key, key)} expects {expected}")
            return


def _check_values(cfg: Any, choices: Mapping[str, tuple[str, ...]]) -> None:
    """The body of :func:`sdnet_cli.config.check_config`: a :class:`UsageError` for the first value of ``cfg``
    training cannot use; ``choices`` maps enum-like keys to their valid strings (``config.CHOICES``)."""
    for key, rule in RULES.items():
        value = value_of(cfg, key)
        if value is not _MISSING:
            expected = rule(value)
            if expected is not None:
                raise _fail(key, value, expected)
    _check_names(cfg, choices)
    _check_convert(cfg)
    _check_model_options(cfg)
    _check_image_size(cfg)
    _check_combinations(cfg)
    _check_folder("train.output", cfg.train.output, "a run directory (a folder, new or existing)")
    if cfg.data.dataset != "digits":
        _check_folder("data.root", cfg.data.root, "the folder that holds (or receives) the dataset")

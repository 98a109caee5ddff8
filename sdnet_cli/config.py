"""Training configuration: a typed dataclass schema, YAML files and ``a.b=value`` overrides.

Resolution order (later wins): schema defaults (= the bundled ``digits`` recipe) → a preset or YAML
file (``--config``; ``--dataset NAME`` alone selects the preset of that dataset) → command-line flags →
``--set section.key=value``. Unknown keys and values of the wrong type are ``UsageError``s that name the
key; then :func:`check_config` (:mod:`sdnet_cli.config_checks`) checks every value's range, choice and path
kind, before a run touches anything. The presets are the YAML files shipped in the package
(``sdnet_cli/configs/<name>.yaml``, read with :mod:`importlib.resources`), so ``sdnet train`` works from any
directory; ``--config NAME`` names one.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .config_checks import _check_values
from .config_sizes import pick_image_size
from .config_values import coerce
from .devices import DEVICE_CHOICES
from .errors import MissingFileError, UsageError


@dataclass
class ModelSection:
    """The network: a registry name (or ``torchvision:NAME`` / ``timm:NAME``) and its SDNet options.

    ``convert`` (``stem`` | ``all``) turns the convolutions of a ``torchvision:``/``timm:`` model into CSC layers.
    """

    name: str = "sdnet18"
    convert: str | None = None
    lmbd: float = 0.1
    n_steps: int = 2
    mu: float = 0.0
    non_negative: bool = True
    expansion: int = 1
    shortcut: bool = True
    width: int = 64  # channels of the first stage (registry models; models.resnet.DEFAULT_WIDTH, the paper's)
    sync_bn: bool = False


@dataclass
class DataSection:
    """Which data and how it is fed."""

    dataset: str = "digits"
    root: str | None = None
    image_size: int | None = None
    in_chans: int = 3
    download: bool = True
    augment: bool = True
    workers: int = 0
    skip_bad_images: bool = False
    val_split: float = 0.1  # fraction of the training set held out to select best/ (0: select on the test set)


@dataclass
class OptimSection:
    """Optimizer and learning-rate schedule (per iteration)."""

    name: str = "adamw"
    lr: float = 0.002
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.05
    schedule: str = "cosine"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    min_lr: float = 0.0  # where cosine ends (the official code's eta_min: 1e-6)
    label_smoothing: float = 0.0
    grad_clip: float = 0.0


@dataclass
class TrainSection:
    """Loop, hardware and output."""

    epochs: int = 5
    batch_size: int = 64
    drop_last: bool = True  # drop each epoch's last partial batch (false: keep it, as the official code does)
    eval_batch_size: int = 256
    seed: int = 0
    limit_batches: int = 0
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "bfloat16"
    channels_last: bool = False
    compile: bool = False
    threads: int = 0  # CPU threads per process; 0 = cores // local processes
    cpu_memory_reuse: bool = True  # on CPU keep freed tensor memory in the process (sdnet_cli.malloc)
    output: str | None = None
    tensorboard: bool = True
    checkpoint_every: int = 0
    step_size_every: int = 16  # each CSC layer's Lanczos tracking period after the warm-up (engine/step_sizes.py)
    step_size: str = "exact"  # exact: 0.9/L kept (step_sizes.py); official: the official code's (official_step_size.py)
    recompute: bool = False  # CSC layers save less for backward and recompute it (CSCConv2d.recompute)
    verify_ddp: bool = False


@dataclass
class Config:
    """A full training configuration (see ``sdnet_cli/configs/*.yaml``)."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("cosine", "step", "constant"),
    "train.device": DEVICE_CHOICES,
    "train.amp_dtype": ("bfloat16", "float16"),
    "train.step_size": ("exact", "official"),
}

PRESETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "imagenet")
"""The recipes shipped as ``sdnet_cli/configs/<name>.yaml`` (digits = the schema defaults; CIFAR/ImageNet: the
paper's, val_split 0 = its protocol, best/ on test)."""


# -- typed assignment -------------------------------------------------------------------------------
def _fields(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Assign ``cfg.<section>.<name> = value`` after checking the key exists and the type fits."""
    parts = key.split(".")
    if len(parts) != 2 or not all(parts):
        raise UsageError(f"config key {key!r} must look like section.name (sections: {', '.join(_fields(cfg))})")
    section, name = parts
    if section not in _fields(cfg):
        raise UsageError(f"unknown config key {key!r}: no section {section!r} (sections: {', '.join(_fields(cfg))})")
    sec = getattr(cfg, section)
    fields = _fields(sec)
    if name not in fields:
        raise UsageError(f"unknown config key {key!r}; {section} has: {', '.join(fields)}")
    v = coerce(key, fields[name], value)
    if key in CHOICES and v not in CHOICES[key]:
        raise UsageError(f"{key}: expected one of {', '.join(CHOICES[key])}, got {v!r}")
    setattr(sec, name, v)


def merge_dict(cfg: Config, data: Any, source: str = "config") -> Config:
    """Apply a nested ``{section: {name: value}}`` mapping onto ``cfg`` (in place; returns it)."""
    if data is None:
        return cfg
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a mapping of sections ({', '.join(_fields(cfg))}), got {type(data).__name__}")
    for section, values in data.items():
        if section not in _fields(cfg):
            raise UsageError(f"{source}: unknown config key {section!r} (sections: {', '.join(_fields(cfg))})")
        if not isinstance(values, dict):
            raise UsageError(f"{source}: section {section!r} must be a mapping, got {values!r}")
        for name, value in values.items():
            try:
                set_value(cfg, f"{section}.{name}", value)
            except UsageError as e:
                raise UsageError(f"{source}: {e}") from None
    return cfg


def _parse_override(item: str) -> tuple[str, str]:
    """``'a.b=value'`` → ``('a.b', 'value')``."""
    if "=" not in item:
        raise UsageError(f"--set expects KEY=VALUE (e.g. train.epochs=5), got {item!r}")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    """Apply ``--set`` items (``section.name=value``) in order."""
    for item in items:
        key, value = _parse_override(item)
        set_value(cfg, key, value)
    return cfg


def _load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML config file; a syntax error becomes a ``ValueError`` with file and line."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"config {path} is a folder; --config expects a YAML file or a preset ({', '.join(PRESETS)})")
    if not path.is_file():
        raise MissingFileError(f"config file {path} not found (presets: {', '.join(PRESETS)})")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except PermissionError:
        raise UsageError(f"config {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise UsageError(f"config {path} is not a text (UTF-8 YAML) file; --config expects a YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"bad YAML in {path}{where}: {problem}") from None
    return data if data is not None else {}


def _preset_text(name: str) -> str:
    """The YAML text of the shipped recipe ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)} (or a path to a YAML file)")
    return resources.files("sdnet_cli").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")


def preset(name: str) -> Config:
    """The shipped recipe ``name`` (``digits``, ``cifar10``, ``cifar100``, ``imagenet``)."""
    return merge_dict(Config(), yaml.safe_load(_preset_text(name)), f"preset {name}")


def load_config(source: str | Path | None = None) -> Config:
    """A :class:`Config` from a preset name, a YAML file (merged over the defaults) or the defaults."""
    if source is None:
        return Config()
    if isinstance(source, str) and source in PRESETS and not Path(source).exists():
        return preset(source)
    return merge_dict(Config(), _load_yaml(source), str(source))


def resolve_config(
    config: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    notes: list[str] | None = None,
) -> Config:
    """Defaults → ``config`` (or the preset of ``flags['data.dataset']``) → ``flags`` (``key: value``, ``None``
    skipped) → ``overrides`` (``--set`` items) → choices left to the tool: an unset ``data.image_size`` below
    what a ``torchvision:``/``timm:`` model takes becomes its minimum
    (:func:`~sdnet_cli.config_sizes.pick_image_size`), said in a line appended to ``notes``."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    if config is None and flags.get("data.dataset") in PRESETS:
        cfg = preset(flags["data.dataset"])
    else:
        cfg = load_config(config)
    for key, value in flags.items():
        set_value(cfg, key, value)
    apply_overrides(cfg, overrides or [])
    note = pick_image_size(cfg)
    if note is not None and notes is not None:
        notes.append(note)
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """Every value of ``cfg`` in range, a valid choice, an option its model takes, and paths of the right kind;
    else a ``UsageError`` naming the key, the value and how to set it (the rules: :mod:`sdnet_cli.config_checks`).
    The one check of a training configuration (``resolve_config`` ends with it, ``train`` starts with it);
    reads only."""
    _check_values(cfg, CHOICES)

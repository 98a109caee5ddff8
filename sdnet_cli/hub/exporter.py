"""``export_model``: a run dir, model dir, Hub model or official ``.pth.tar`` → a Hub-ready model directory.

The output holds ``model.safetensors`` (``__metadata__``: format, format_version, architecture,
sdnet_version), ``config.json``, a ``README.md`` model card, ``robustness.json`` when a ``sdnet robust``
``results.json`` sits next to the run, and ``model.onnx`` with ``formats`` containing ``onnx``. The
weights are re-serialised from the strictly loaded model, so they round-trip bit-exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import torch.nn as nn

from ..models.files import CONFIG_NAME, WEIGHTS_NAME, ModelConfig, atomic_write_bytes, atomic_write_json, load_model_dir, save_model
from ..models.load import resolve_model_dir
from .card import render_model_card
from .onnx_export import ONNX_NAME, check_onnx, export_onnx
from .zoo import OFFICIAL_NORMALIZATION, dataset_for, find_entry
from ..errors import UsageError

CARD_NAME = "README.md"
ROBUST_NAME = "robustness.json"
FORMATS = ("safetensors", "onnx")
OFFICIAL_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar")
RECIPE_NAMES = ("config.yaml", "resolved_config.yaml", "train_config.yaml", "run_config.yaml", "config.resolved.yaml")
DEFAULT_IMAGE_SIZE = {"cifar": 32, "imagenet": 224}


@dataclass
class ExportResult:
    """What ``export_model`` wrote: ``files`` are names inside ``output``."""

    output: Path
    files: list[str]
    config: ModelConfig
    source: str
    onnx_max_abs_diff: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def is_official_checkpoint(src: str | Path) -> bool:
    """Whether ``src`` names a PyTorch checkpoint file (``.pth.tar``, ``.pth``, ``.pt``)."""
    return str(src).lower().endswith(OFFICIAL_SUFFIXES)


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"safetensors,onnx"`` → ``('safetensors', 'onnx')``; safetensors is always included."""
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad:
        raise UsageError(f"unknown export format {bad[0]!r}; valid: {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in items or f == "safetensors")


def _dataset_defaults(dataset: str | None) -> tuple[list[float] | None, list[float] | None, int | None]:
    """``(mean, std, image_size)`` the data module knows for ``dataset`` (``None`` where it does not)."""
    if dataset is None:
        return None, None, None
    try:
        from ..data.datasets import dataset_info  # written by the data/training work; optional here
        info = dataset_info(dataset)
        return list(info.mean), list(info.std), int(info.image_size)
    except (ImportError, ValueError, KeyError, AttributeError):
        return None, None, None


def load_official(path: str | Path, arch: str | None, num_classes: int | None, stem: str | None, shortcut: bool,
                  dataset: str | None) -> tuple[nn.Module, ModelConfig, str]:
    """An official checkpoint as ``(model, config, source)``; the config carries the official normalisation."""
    if arch is None or num_classes is None:
        raise UsageError(f"exporting the official checkpoint {path} needs --arch and --num-classes "
                         "(e.g. --arch sdnet18 --num-classes 10 --stem cifar)")
    stem = stem or ("imagenet" if num_classes == 1000 else "cifar")
    from .official import import_official

    model, config = import_official(path, arch, num_classes, stem, shortcut)
    dataset = dataset or dataset_for(num_classes, stem)
    mean, std = OFFICIAL_NORMALIZATION.get(dataset or "", (None, None))
    metrics = dict(config.metrics)
    entry = find_entry(arch, num_classes, stem, shortcut)
    source = f"official SDNet checkpoint `{Path(path).name}` (github.com/Delay-Xili/SDNet), converted by `sdnet export`"
    if entry is not None and entry.dataset == dataset:
        metrics.update(top1=entry.accuracy, top1_source="official SDNet README")
        source += f"; accuracy as reported by the official README for {entry.name}"
    config = replace(config, dataset=dataset, mean=list(mean) if mean else None, std=list(std) if std else None,
                     metrics=metrics)
    recipe = None
    if dataset in ("cifar10", "cifar100"):
        recipe = ("Official recipe: SGD (momentum 0.9, Nesterov), lr 0.1 with cosine decay, weight decay 5e-4, "
                  "batch 128, 220 epochs, random crop + flip; λ 0.1, 2 FISTA steps, non-negative codes.")
    elif dataset == "imagenet":
        recipe = ("Official recipe: SGD (momentum 0.9), lr 0.1 ×0.1 at epochs 30/60/90, weight decay 1e-4, "
                  "batch 512, 100 epochs, random resized crop + flip; λ 0.1, 2 FISTA steps, non-negative codes.")
    return model, config, source + ("\n\n" + recipe if recipe else "")


def find_robust_results(model_dir: Path) -> dict[str, Any] | None:
    """A ``sdnet robust`` ``results.json`` in or next to ``model_dir`` (or a ``robust/`` folder there)."""
    for base in (model_dir, model_dir.parent):
        for cand in (base / "results.json", base / "robust" / "results.json", base / ROBUST_NAME):
            if cand.is_file():
                try:
                    obj = json.loads(cand.read_text())
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(obj, dict) and isinstance(obj.get("results"), list):
                    return obj
    return None


def find_recipe(model_dir: Path) -> str | None:
    """The run's resolved training config (YAML text) saved in or next to ``model_dir``."""
    for base in (model_dir, model_dir.parent):
        for name in RECIPE_NAMES:
            if (base / name).is_file():
                return (base / name).read_text()
    return None


def export_model(
    src: str | Path,
    output: str | Path,
    *,
    formats: str | Iterable[str] = ("safetensors",),
    arch: str | None = None,
    num_classes: int | None = None,
    stem: str | None = None,
    shortcut: bool = True,
    dataset: str | None = None,
    image_size: int | None = None,
    repo_id: str | None = None,
) -> ExportResult:
    """Export ``src`` into the model directory ``output``; see the module docstring for what is written.

    ``arch``/``num_classes``/``stem``/``shortcut`` describe an official checkpoint (only then);
    ``image_size`` sets the ONNX input size (default: the training size recorded in the config's metrics,
    else the dataset's, else 32 / 224 by stem);
    ``repo_id`` is the Hub repo named in the card's usage section.
    """
    fmts = parse_formats(formats)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; pass a directory")
    robust = recipe = None
    if is_official_checkpoint(src):
        model, config, source = load_official(src, arch, num_classes, stem, shortcut, dataset)
        recipe, source = source.partition("\n\n")[2] or None, source.partition("\n\n")[0]
    else:
        if arch is not None or num_classes is not None or stem is not None or not shortcut:
            raise UsageError("--arch, --num-classes, --stem and --no-shortcut describe an official .pth.tar checkpoint; "
                             f"{src} is a model (its config.json says what it is)")
        if Path(src).is_file():
            raise UsageError(f"{src} is a file; pass a run or model directory, a Hub model, or an official .pth.tar")
        model_dir = resolve_model_dir(src)
        if output.resolve() == model_dir.resolve():
            raise UsageError(f"--output {output} is the source model directory; choose another directory")
        model, config = load_model_dir(model_dir)
        if dataset is not None:
            config = replace(config, dataset=dataset)
        robust, recipe = find_robust_results(model_dir), find_recipe(model_dir)
        source = f"`{src}`"
    mean, std, size = _dataset_defaults(config.dataset)
    if config.mean is None and mean is not None:
        config = replace(config, mean=mean, std=std)

    save_model(model, output, config)
    files = [WEIGHTS_NAME, CONFIG_NAME]
    if robust is not None:
        atomic_write_json(output / ROBUST_NAME, robust)
        files.append(ROBUST_NAME)
    else:
        (output / ROBUST_NAME).unlink(missing_ok=True)
    name = repo_id.split("/")[-1] if repo_id else output.resolve().name
    card = render_model_card(config, name=name, repo_id=repo_id, recipe=recipe, robust=robust, source=source)
    atomic_write_bytes(output / CARD_NAME, card.encode())
    files.append(CARD_NAME)

    diff = None
    if "onnx" in fmts:
        trained = config.metrics.get("image_size")  # the size `sdnet train` used, when it recorded it
        side = image_size or (int(trained) if isinstance(trained, int) else None) or size \
            or DEFAULT_IMAGE_SIZE.get(config.stem, 32)
        shape = (int(config.model_args.get("in_chans", 3)), side, side)
        export_onnx(model, output / ONNX_NAME, shape)
        diff = check_onnx(model, output / ONNX_NAME, shape)
        files.append(ONNX_NAME)
    else:
        (output / ONNX_NAME).unlink(missing_ok=True)
    return ExportResult(output=output, files=files, config=config, source=source, onnx_max_abs_diff=diff,
                        extras={"onnx_checked": diff is not None} if "onnx" in fmts else {})

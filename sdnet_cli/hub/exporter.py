"""``hub.export(ExportOptions) -> ExportResult``: a run dir, model dir, Hub model or official ``.pth.tar`` →
a Hub-ready model directory (and, with ``push_to_hub``, its upload).

The output holds ``model.safetensors`` (``__metadata__``: format, format_version, architecture,
sdnet_version), ``config.json``, a ``README.md`` model card, ``robustness.json`` when a ``sdnet robust``
``results.json`` sits next to the run, and ``model.onnx`` with ``formats`` containing ``onnx``. The
weights are re-serialised from the strictly loaded (and checked) model, so they round-trip bit-exactly.

The output follows the one output rule (:func:`~sdnet_cli.outputs.check_output_dir`): a new or empty folder
or an earlier export (a model directory), never the source model or a folder holding it. It is replaced in
one switch (:func:`~sdnet_cli.outputs.write_output`): a kill at any instant leaves the complete previous export
or the complete new one; files the export does not write are carried over; temporaries of killed exports are
removed by the next one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch.nn as nn

from ..checks import is_int
from ..errors import MissingFileError, UsageError
from ..fsio import json_bytes, write_file
from ..models.files import CONFIG_NAME, WEIGHTS_NAME, ModelConfig, load_model_dir, write_model_files
from ..models.registry import check_model_name, model_arg_names
from ..models.schema import check_weights
from ..deprecations import renamed_fields
from ..models.stem_type import OLD_FIELD, check_stem_type
from ..models.sizes import check_image_size
from ..outputs import OutputDir, check_output_dir, write_output
from .card import render_model_card
from .onnx_export import ONNX_NAME, check_onnx, export_onnx
from .resolve import resolve_model_dir
from .zoo import OFFICIAL_NORMALIZATION, dataset_for, find_entry

CARD_NAME = "README.md"
ROBUST_NAME = "robustness.json"
FORMATS = ("safetensors", "onnx")
OFFICIAL_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar")
RECIPE_NAMES = ("config.yaml", "resolved_config.yaml", "train_config.yaml", "run_config.yaml", "config.resolved.yaml")
DEFAULT_IMAGE_SIZE = {"cifar": 32, "imagenet": 224}
EXPORT_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME, ROBUST_NAME, ONNX_NAME)
"""Every name an export writes (or removes when it does not produce it); other files are carried over."""


@renamed_fields(OLD_FIELD)
@dataclass(frozen=True)
class ExportOptions:
    """What ``sdnet export`` does, validated at construction (nothing is read or written before).

    ``source``: run dir, model dir, zoo name, ``ORG/REPO[@REV]`` or an official ``.pth.tar``; ``arch``,
    ``num_classes``, ``stem_type``, ``shortcut`` describe an official checkpoint (only then); ``image_size``:
    ONNX input side (default: the training size recorded in the config, else the dataset's, else 32 / 224
    by ``stem_type``); ``push_to_hub``: upload the export to this Hub repo (``private``, ``revision`` = branch).
    """

    source: str
    output: Path
    formats: tuple[str, ...] = ("safetensors",)
    arch: str | None = None
    num_classes: int | None = None
    stem_type: str | None = None
    shortcut: bool = True
    dataset: str | None = None
    image_size: int | None = None
    push_to_hub: str | None = None
    private: bool = False
    revision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", str(self.source))
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "formats", parse_formats(self.formats))
        self.output_dir()
        if is_official_checkpoint(self.source):
            self._check_official()
        elif self.arch is not None or self.num_classes is not None or self.stem_type is not None or not self.shortcut:
            raise UsageError("--arch, --num-classes, --stem-type and --no-shortcut describe an official .pth.tar checkpoint; "
                             f"{self.source} is a model (its config.json says what it is)")
        elif Path(self.source).is_file():
            raise UsageError(f"{self.source} is a file; pass a run or model directory, a Hub model, or an official .pth.tar")
        if self.image_size is not None and (not is_int(self.image_size) or self.image_size < 1):
            raise UsageError(f"--image-size must be an integer >= 1, got {self.image_size!r}")
        if self.dataset is not None and (not isinstance(self.dataset, str) or not self.dataset):
            raise UsageError(f"--dataset must be a dataset name, got {self.dataset!r}")
        if (self.private or self.revision) and not self.push_to_hub:
            raise UsageError("--private and --revision apply to --push-to-hub")
        if self.push_to_hub:
            from .push import check_repo_id

            check_repo_id(self.push_to_hub)

    def output_dir(self, model_dir: Path | None = None) -> OutputDir:
        """``--output`` checked against the output rule; never the source (or ``model_dir``) or a folder holding it."""
        reads = [p for p in (Path(self.source), model_dir) if p is not None and p.exists()]
        return check_output_dir(self.output, "export", sources=reads, layout=earlier_export)

    def _check_official(self) -> None:
        if self.arch is None or self.num_classes is None:
            raise UsageError(f"exporting the official checkpoint {self.source} needs --arch and --num-classes "
                             "(e.g. --arch sdnet18 --num-classes 10 --stem-type cifar)")
        check_model_name(self.arch)
        if not is_int(self.num_classes) or self.num_classes < 1:
            raise UsageError(f"--num-classes must be an integer >= 1, got {self.num_classes!r}")
        if self.stem_type is not None:
            check_stem_type(self.stem_type, "--stem-type")
        if not self.shortcut and "shortcut" not in model_arg_names(self.arch):
            raise UsageError(f"--no-shortcut applies to the *_all models, not {self.arch}")
        if not Path(self.source).exists():
            raise MissingFileError(f"checkpoint {self.source} not found")
        if not Path(self.source).is_file():
            raise UsageError(f"{self.source} is a folder, not a checkpoint file")


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote: ``files`` are the names it wrote inside ``output``; ``commit_url`` after a push."""

    output: Path
    files: list[str]
    config: ModelConfig
    source: str
    onnx_max_abs_diff: float | None = None
    commit_url: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def earlier_export(folder: Path) -> list[str] | None:
    """What an export written before outputs had a manifest owns: a model directory with its card (``None``: not
    one; a run's ``best/`` has no card and is not an export)."""
    return list(EXPORT_FILES) if all((folder / n).is_file() for n in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)) else None


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
    except (ImportError, UsageError):
        return None, None, None


def load_official(path: str | Path, arch: str, num_classes: int, stem_type: str | None, shortcut: bool,
                  dataset: str | None) -> tuple[nn.Module, ModelConfig, str]:
    """An official checkpoint as ``(model, config, source)``; the config carries the official normalisation."""
    stem_type = stem_type or ("imagenet" if num_classes == 1000 else "cifar")
    from .official import import_official

    model, config = import_official(path, arch, num_classes, stem_type, shortcut)
    dataset = dataset or dataset_for(num_classes, stem_type)
    mean, std = OFFICIAL_NORMALIZATION.get(dataset or "", (None, None))
    metrics = dict(config.metrics)
    entry = find_entry(arch, num_classes, stem_type, shortcut)
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




def _load_source(o: ExportOptions) -> tuple[nn.Module, ModelConfig, str, str | None, dict[str, Any] | None, OutputDir]:
    """``(model, config, source sentence, recipe, robust results, output)`` of the export, loaded and checked."""
    if is_official_checkpoint(o.source):
        assert o.arch is not None and o.num_classes is not None  # ExportOptions checked it
        model, config, source = load_official(o.source, o.arch, o.num_classes, o.stem_type, o.shortcut, o.dataset)
        return model, config, source.partition("\n\n")[0], source.partition("\n\n")[2] or None, None, o.output_dir()
    model_dir = resolve_model_dir(o.source)
    out = o.output_dir(model_dir)  # the source resolved (a run's best/, a Hub cache folder) is never the output
    model, config = load_model_dir(model_dir)
    if o.dataset is not None:
        config = replace(config, dataset=o.dataset)
    return model, config, f"`{o.source}`", find_recipe(model_dir), find_robust_results(model_dir), out


def _onnx_shape(config: ModelConfig, image_size: int | None, dataset_size: int | None) -> tuple[int, int, int]:
    """``(C, H, W)`` of the ONNX input: ``image_size``, else the trained size, the dataset's, 32 / 224 by
    ``stem_type``."""
    trained = config.metrics.get("image_size")  # the size `sdnet train` used, when it recorded it
    side = image_size or (trained if isinstance(trained, int) and not isinstance(trained, bool) else None) \
        or dataset_size or DEFAULT_IMAGE_SIZE.get(config.stem_type, 32)
    check_image_size(side, config.stem_type, "--image-size (the ONNX input size)")
    return int(config.model_args.get("in_chans", 3)), side, side


def _write_export(staged: Path, model: nn.Module, config: ModelConfig, o: ExportOptions, source: str,
                  recipe: str | None, robust: dict[str, Any] | None,
                  shape: tuple[int, int, int] | None) -> tuple[list[str], float | None]:
    """Write every file of the export into the staging folder ``staged``; returns ``(names, onnx diff)``."""
    files = write_model_files(model, staged, config)
    if robust is not None:
        write_file(staged / ROBUST_NAME, json_bytes(robust))
        files.append(ROBUST_NAME)
    name = o.push_to_hub.split("/")[-1] if o.push_to_hub else o.output.resolve().name
    card = render_model_card(config, name=name, repo_id=o.push_to_hub, recipe=recipe, robust=robust, source=source)
    write_file(staged / CARD_NAME, card.encode())
    files.append(CARD_NAME)
    diff = None
    if shape is not None:
        export_onnx(model, staged / ONNX_NAME, shape)
        diff = check_onnx(model, staged / ONNX_NAME, shape)
        files.append(ONNX_NAME)
    return files, diff


def export(options: ExportOptions, on_stage: Callable[[str], None] | None = None) -> ExportResult:
    """Export ``options.source`` into the model directory ``options.output`` as one switch; push it if asked.

    ``on_stage(text)`` is told when loading/writing and uploading start (the CLI shows it as a status line).
    """
    stage = on_stage or (lambda _text: None)
    stage(f"exporting {options.source} …")
    model, config, source, recipe, robust, out = _load_source(options)
    mean, std, size = _dataset_defaults(config.dataset)
    if config.mean is None and mean is not None:
        config = replace(config, mean=mean, std=std)
    shape = _onnx_shape(config, options.image_size, size) if "onnx" in options.formats else None
    own = model.state_dict()
    check_weights(own, own, "the model to export")
    files, diff = write_output(out, lambda staged: _write_export(
        staged, model, config, options, source, recipe, robust, shape), manifest=False)  # the layout is the marker
    commit_url = None
    if options.push_to_hub:
        from .push import push_to_hub

        stage(f"uploading to {options.push_to_hub} …")
        commit_url = push_to_hub(options.output, options.push_to_hub, private=options.private,
                                 revision=options.revision, files=files).commit_url
    return ExportResult(output=options.output, files=files, config=config, source=source, onnx_max_abs_diff=diff,
                        commit_url=commit_url, extras={"onnx_checked": diff is not None} if shape else {})

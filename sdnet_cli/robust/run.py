"""``run(RobustOptions) -> RobustReport``: what ``sdnet robust`` does, as one library call.

Order: validate everything (options at construction; here the models, their datasets and image sizes,
the CIFAR-C folder, a ``--lambda-fit`` file, the attacks extra, the output folder against the one output rule
of :func:`sdnet_cli.outputs.check_output_dir`) → resolve the device once → under the output's lock
(:func:`sdnet_cli.outputs.write_output`): download CIFAR-C when asked → per model: load its data, run it
(:func:`~sdnet_cli.robust.runner.run_model`), write ``results.json``/``.csv``, plots and ``lambda_fit.json``
into a staging folder beside the output → switch it in as ``--output`` in one step, files of the user's
carried over. A failure or a kill at any moment leaves the previous output whole; a folder of the user's
(not empty, not an earlier ``sdnet robust`` output) or one holding a model being read is refused (exit 2).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..data.datasets import dataset_info, load_raw_images
from ..data.splits import train_val_indices
from ..devices import resolve_device
from ..errors import UsageError
from ..outputs import OutputDir, check_output_dir, write_output
from ..models.files import ModelConfig
from ..hub.resolve import load_model_with_config, resolve_model_dir
from ..models.sizes import check_image_size
from .autoattack import is_available
from .lmbd_fit import LmbdFit
from .options import RobustOptions
from .report import comparison, write_comparison, write_report
from .runner import ModelData, Progress, Silent, run_model


@dataclass
class RobustReport:
    """The per-model ``results.json`` objects, their comparison (several models), the files and the time."""

    models: list[dict[str, Any]]
    comparison: dict[str, Any] | None
    output: str
    files: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """What ``sdnet robust --json`` prints: the model's report (one model) or all of them."""
        if len(self.models) == 1:
            return self.models[0]
        return {"models": self.models, "comparison": self.comparison, "files": self.files, "seconds": self.seconds}


def model_labels(sources: list[str] | tuple[str, ...]) -> list[str]:
    """Short unique names for the models (``run/best`` for a checkpoint folder, ``#2`` for repeats)."""
    out: list[str] = []
    for src in sources:
        p = Path(src)
        name = f"{p.parent.name}/{p.name}" if p.name in ("best", "last") and p.parent.name else (p.name or src)
        label, k = name, 2
        while label in out:
            label, k = f"{name}#{k}", k + 1
        out.append(label)
    return out


def selection(config: ModelConfig, model_dir: Path) -> dict[str, Any]:
    """Which checkpoint this is and what chose it (``config.json`` ``metrics``), in words under ``text``."""
    m = config.metrics or {}
    keys = ("checkpoint", "selected_on", "val_split", "seed")
    sel: dict[str, Any] = {k: m.get(k) for k in keys}
    if sel["selected_on"] is None or sel["checkpoint"] is None:
        sel["text"] = f"unknown selection ({model_dir.name}/ records no checkpoint and selection)"
    elif sel["selected_on"] == "val":
        sel["text"] = (f"checkpoint {sel['checkpoint']}, selected on a validation split "
                       f"({100 * float(sel['val_split'] or 0):g} % of the training images, seed {sel['seed']})")
    else:
        sel["text"] = f"checkpoint {sel['checkpoint']}, selected on {sel['selected_on']} accuracy"
    return sel


def held_out_images(config: ModelConfig, dataset: str, opts: RobustOptions, size: int | None) -> tuple[Any, str]:
    """Clean training images the model did not train on (its validation split), and where they come from;
    a model without a validation split gets its training images, and the source says so."""
    images, labels = load_raw_images(dataset, "train", opts.data_root, image_size=size, download=opts.cifar_c_dir is None)
    m = config.metrics or {}
    frac = float(m.get("val_split") or 0.0)
    if frac > 0 and m.get("seed") is not None and dataset == config.dataset:
        idx = train_val_indices(len(labels), frac, int(m["seed"]))[1]
        return (images[idx], labels[idx]), (f"validation split held out from training ({len(idx)} images, "
                                            f"val_split={frac:g}, seed={m['seed']})")
    return (images, labels), ("training images the model was trained on (it records no validation split): "
                              "calibration is not held out")


def _image_size(config: ModelConfig, dataset: str, opts: RobustOptions) -> int | None:
    size = opts.image_size or ((config.metrics or {}).get("image_size") if dataset == config.dataset else None)
    check_image_size(None if size is None else int(size), config.stem_type)
    return None if size is None else int(size)


def _check_models(opts: RobustOptions) -> list[tuple[nn.Module, ModelConfig, Path]]:
    """Load every model and check its dataset and image size (before anything is written)."""
    loaded = []
    for src in opts.models:
        path = resolve_model_dir(src)
        model, config = load_model_with_config(path)
        ds = opts.dataset or config.dataset
        if ds is None:
            raise UsageError(f"{src}: its config.json names no dataset; pass --dataset NAME")
        if dataset_info(ds).num_classes != config.num_classes:
            raise UsageError(f"{src} has {config.num_classes} classes but {ds} has {dataset_info(ds).num_classes}")
        _image_size(config, ds, opts)
        loaded.append((model, config, path))
    return loaded


def earlier_output(folder: Path) -> list[str] | None:
    """The files of a robust output written before outputs had a manifest: ``results.json`` (or
    ``comparison.json``) among files and folders robust writes (``None``: not one)."""
    names = os.listdir(folder)
    mine = lambda n: n.endswith((".json", ".csv", ".png")) or (folder / n / "results.json").is_file()  # noqa: E731
    has_report = "results.json" in names or "comparison.json" in names
    return names if has_report and all(mine(n) for n in names) else None


def output_dir(opts: RobustOptions, models: list[Path]) -> OutputDir:
    """``--output`` checked against the output rule: never a model, run, CIFAR-C folder or fit being read."""
    reads = [Path(m) for m in opts.models if Path(m).exists()] + models
    reads += [p for p in (opts.cifar_c_dir, opts.lmbd_fit) if p is not None and Path(p).exists()]
    return check_output_dir(opts.output, "robust", sources=reads, layout=earlier_output)


def validate(opts: RobustOptions) -> list[tuple[nn.Module, ModelConfig, Path]]:
    """Every check that needs files: models, CIFAR-C folder, ``--lambda-fit``, the attacks extra, ``--output``."""
    check_output_dir(opts.output, "robust", layout=earlier_output)  # a file or a folder of the user's: say so before loading anything
    if opts.is_library_attack and not is_available():
        raise UsageError(f"--attack {opts.attack} needs the 'attacks' extra: pip install \"sdnet[attacks]\" (pyautoattack)")
    if opts.lmbd_fit is not None:
        LmbdFit.load(opts.lmbd_fit)
    loaded = _check_models(opts)
    output_dir(opts, [path for _, _, path in loaded])
    if opts.cifar_c_dir is not None and not opts.download:
        check_cifar_c(opts.cifar_c_dir, opts, loaded)
    return loaded


def check_cifar_c(cdir: Path, opts: RobustOptions, loaded: list[tuple[nn.Module, ModelConfig, Path]]) -> None:
    """The CIFAR-C files against each model's input: its image size and classes (one line each problem)."""
    from ..data.cifar_c import validate_cifar_c_dir

    for _, config, _ in loaded:
        ds = opts.dataset or config.dataset
        validate_cifar_c_dir(cdir, opts.corruption_names(), ds, image_size=_image_size(config, ds, opts),
                             num_classes=config.num_classes)


def _model_data(config: ModelConfig, opts: RobustOptions, cdir: Path | None) -> ModelData:
    ds = opts.dataset or config.dataset
    assert ds is not None
    size = _image_size(config, ds, opts)
    data = ModelData(clean=None)
    if cdir is not None:
        from ..data.cifar_c import resolve_cifar_c_dir

        data.cifar_c_dir = resolve_cifar_c_dir(cdir, ds)
        try:
            data.clean = load_raw_images(ds, "test", opts.data_root, image_size=size, download=False)
        except (UsageError, FileNotFoundError) as e:
            data.notes.append(f"clean test set not evaluated ({e})")
    else:
        data.clean = load_raw_images(ds, "test", opts.data_root, image_size=size)
    if opts.attack and data.clean is None:
        raise UsageError("--attack needs the clean test set; pass --data-root where it lives")
    if (opts.wants_auto_lmbd and opts.lmbd_fit is None) or opts.recalibrate_bn:
        data.held_out, data.held_out_source = held_out_images(config, ds, opts, size)
        if not data.held_out_source.startswith("validation"):
            data.notes.append(f"held-out images: {data.held_out_source}")
    return data


def _download(opts: RobustOptions, dataset: str | None, progress: Progress) -> Path | None:
    if not opts.download or opts.cifar_c_dir is None:
        return opts.cifar_c_dir
    from ..data.cifar_c import download_cifar_c
    from ..netio import NetBounds

    seen = [0]

    def on_bytes(done: int, total: int | None) -> None:
        if seen[0] == 0 and done == 0:
            progress.start(f"downloading {dataset or 'cifar10'} corruptions", total or 0)
        progress.advance(done - seen[0])
        seen[0] = done

    return download_cifar_c(opts.cifar_c_dir, dataset or "cifar10", on_bytes, bounds=NetBounds(opts.timeout))


def run(opts: RobustOptions, progress: Progress | None = None) -> RobustReport:
    """Run ``sdnet robust`` (see the module doc); ``progress`` receives the progress of each phase."""
    progress = progress or Silent()
    loaded = validate(opts)
    opts = opts.on_device(str(resolve_device(opts.device)))  # the checked options, not checked again
    start = time.time()

    def write(staged: Path) -> tuple[list[dict[str, Any]], list[Path], Path]:
        cdir = _download(opts, opts.dataset or loaded[0][1].dataset, progress)
        if opts.download and cdir is not None:
            check_cifar_c(cdir, opts, loaded)
        reports = _run_models(opts, loaded, cdir, staged, progress, start)
        return reports, (_write_comparison(opts, reports, staged) if len(reports) > 1 else []), staged

    reports, files, staged = write_output(output_dir(opts, [path for _, _, path in loaded]), write)
    final = lambda p: str(opts.output / Path(p).relative_to(staged))  # noqa: E731
    for rep in reports:
        rep["files"] = [final(f) for f in rep["files"]]
    return RobustReport(reports, comparison(reports) if len(reports) > 1 else None, str(opts.output),
                        [final(f) for f in files], round(time.time() - start, 1))


def _run_models(opts: RobustOptions, loaded: list[tuple[nn.Module, ModelConfig, Path]], cdir: Path | None,
                staged: Path, progress: Progress, start: float) -> list[dict[str, Any]]:
    from .plots import write_plots

    reports = []
    for (model, config, path), label in zip(loaded, model_labels(opts.models)):
        data = _model_data(config, opts, cdir)
        report = run_model(model, config, opts, label, data, progress)
        report["selection"] = selection(config, path)
        report["seconds"] = round(time.time() - start, 1)
        out_dir = staged if len(loaded) == 1 else staged / label.replace("/", "_")
        out_dir.mkdir(parents=True, exist_ok=True)
        files = write_report(report, out_dir)
        if opts.plots:
            files += write_plots(report, out_dir)
        if "lambda_fit" in report and opts.lmbd_fit is None:
            files.append(LmbdFit(**{k: v for k, v in report["lambda_fit"].items() if k != "format"})
                         .save(out_dir / "lambda_fit.json"))
        report["files"] = [str(f) for f in files]
        reports.append(report)
    return reports


def _write_comparison(opts: RobustOptions, reports: list[dict[str, Any]], staged: Path) -> list[Path]:
    from .plots import comparison_plot

    files = write_comparison(reports, staged)
    if opts.plots:
        p = comparison_plot(reports, staged / "comparison.png")
        files += [p] if p else []
    return files

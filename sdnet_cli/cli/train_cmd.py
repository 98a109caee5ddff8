"""``sdnet train``: config + flags + ``--set`` overrides → :func:`sdnet_cli.engine.train.train`."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Optional

import typer
from rich.markup import escape

from ..config import Config, resolve_config
from ..engine.train import NonFiniteLossError, TrainingInterrupted, resume_config, train
from ..errors import UsageError
from .common import EXIT_USAGE, console, error_line, print_json, styled
from .progress import RichProgress


def train_command(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML file or preset name (digits, cifar10, cifar100, imagenet)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="digits | cifar10 | cifar100 | imagenet (alone: that dataset's paper recipe)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registry name, e.g. sdnet18, sdnet18_all, resnet18."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding (or receiving) the dataset."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Number of epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size (all processes together)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Base learning rate."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Run directory (default runs/<dataset>-<model>-<time>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --output (default: newest under runs/)."),
    force: bool = typer.Option(False, "--force", help="Replace the run in an existing --output (kept intact until the new run's first checkpoint)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision autocast on CUDA (train.amp_dtype bfloat16|float16)."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="channels_last memory format."),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    sync_bn: Optional[bool] = typer.Option(None, "--sync-bn/--no-sync-bn", help="Synchronised BatchNorm under torchrun."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (init, data order, augmentation)."),
    no_download: bool = typer.Option(False, "--no-download", help="Never download datasets."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override any config key: --set section.key=value (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON result object on stdout."),
) -> None:
    """Train an SDNet (or ResNet) classifier; writes best/ and last/ model dirs, metrics.jsonl and a resumable state.

    Examples:

      sdnet train                                   # sdnet18 on the bundled digits, offline: 5 epochs

      sdnet train --dataset cifar10 --data-root ~/data      # the paper's CIFAR-10 recipe (220 epochs)

      sdnet train --config cifar100 --model sdnet18_all --set model.lmbd=0.2 --epochs 10

      sdnet train --resume --output runs/digits-sdnet18-20261125-101500

      torchrun --nproc_per_node 8 -m sdnet_cli train --dataset imagenet --data-root /data/imagenet --sync-bn
    """
    flags = {
        "data.dataset": dataset, "model.name": model, "data.root": data_root, "train.epochs": epochs,
        "train.batch_size": batch_size, "optim.lr": lr, "train.device": device, "train.amp": amp,
        "train.channels_last": channels_last, "train.compile": compile_, "model.sync_bn": sync_bn,
        "data.workers": workers, "train.seed": seed, "data.download": False if no_download else None,
    }
    if resume and config is not None:
        raise UsageError("--resume continues with the run's own config.yaml; drop --config")
    if resume:
        cfg = resume_config(output, flags, set_ or [])
    else:
        notes: list[str] = []
        cfg = resolve_config(config, {**flags, "train.output": output}, set_ or [], notes)
        for note in notes:  # choices the tool made (e.g. the image size a torchvision:/timm: model needs)
            console.print(note, soft_wrap=True)  # the console reads no markup
    _run(cfg, resume, force, json_out)


def _run(cfg: Config, resume: bool, force: bool, json_out: bool) -> None:
    """Call :func:`train` with rich progress (rank 0) and print the result, or the interruption / NaN line."""
    is_main = int(os.environ.get("RANK", "0")) == 0
    progress = RichProgress(quiet=not is_main)
    try:
        result = train(cfg, resume=resume, force=force, callbacks=progress)
    except TrainingInterrupted as e:
        progress.close()
        if is_main:
            console.print(styled(f"[yellow]interrupted[/]: state saved; continue with: sdnet train --resume --output "
                                 f"{escape(str(e.output))}"), soft_wrap=True)
        raise SystemExit(130)
    except NonFiniteLossError as e:
        progress.close()
        error_line(str(e))
        raise SystemExit(EXIT_USAGE)  # a diverging loss comes from the run's settings (learning rate, λ): the user's to change
    finally:
        progress.close()
    if not is_main:
        return
    if json_out:
        print_json(dataclasses.asdict(result))
    out = result.output
    console.print(styled(f"[bold green]done[/] in {result.seconds:.0f}s: test top-1 [bold]{result.top1:.2f}%[/] "
                         f"(best/: epoch {result.best_epoch}, selected on {result.selected_on}) -> {escape(out)}"))
    console.print("next:\n"
                  f"  sdnet eval {out}\n"
                  f"  sdnet robust {out} --corruptions noise\n"
                  f"  sdnet visualize {out}\n"
                  f"  sdnet export {out} --output {out}/export")
    sys.stdout.flush()

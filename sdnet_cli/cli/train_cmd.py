"""``sdnet train``: config + flags + ``--set`` overrides → :func:`sdnet_cli.engine.train.train`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..config import resolve_config
from ..engine.callbacks import Callbacks
from ..engine.train import NonFiniteLossError, TrainingInterrupted, train
from .common import EXIT_BAD_INPUT, console, error_line, print_json
from ..errors import MissingFileError, UsageError


class RichProgress(Callbacks):
    """Epoch and batch bars (loss, accuracy, img/s, ETA) on stderr and one line per epoch; rank 0 only."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.main = True
        self.epochs = 0

    def on_start(self, info: dict[str, Any]) -> None:
        self.main = bool(info["is_main"])
        self.epochs = int(info["epochs"])
        if not self.main or self.quiet:
            return
        where = f"{info['device']}" + (f" x{info['world']} processes" if info["world"] > 1 else f", {info['threads']} threads")
        resumed = info.get("resumed_at")
        note = f" (resuming epoch {resumed[0] + 1}, batch {resumed[1]})" if resumed else ""
        console.print(f"training [bold]{info['model']}[/] on [bold]{info['dataset']}[/] ({info['train_images']} images, "
                      f"{info['image_size']}x{info['image_size']}) on {where} -> {escape(info['output'])}{note}")
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
        )
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs", total=self.epochs, stats="")
        self.batch_task = None

    def on_epoch_start(self, epoch: int, steps: int, done: int) -> None:
        if self.progress is None:
            return
        self.progress.update(self.epoch_task, completed=epoch)
        if self.batch_task is not None:
            self.progress.remove_task(self.batch_task)
        self.batch_task = self.progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps, completed=done,
                                                 stats="")

    def on_batch(self, row: dict[str, Any]) -> None:
        if self.progress is None or self.batch_task is None:
            return
        stats = f"loss {row['loss']:.3f} acc {row['top1']:5.1f}% {row['images_per_s']:6.0f} img/s lr {row['lr']:.3g}"
        self.progress.update(self.batch_task, completed=row["batch"], stats=stats)

    def on_eval_start(self, images: int) -> None:
        if self.progress is not None and self.batch_task is not None:
            self.progress.update(self.batch_task, stats=f"evaluating {images} test images")

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        if not self.main or self.quiet:
            return
        if self.progress is not None:
            self.progress.update(self.epoch_task, completed=row["epoch"])
        star = " *" if row["best"] else ""
        console.print(f"epoch {row['epoch']:>3}/{self.epochs}  train loss {row['train_loss']:.4f} acc {row['train_top1']:5.2f}%  "
                      f"test loss {row['val_loss']:.4f} top-1 {row['val_top1']:5.2f}% top-5 {row['val_top5']:5.2f}%  "
                      f"lr {row['lr']:.3g}  {row['time']:.1f}s ({row['images_per_s']:.0f} img/s){star}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _latest_run(root: Path = Path("runs")) -> Path:
    runs = [p for p in root.glob("*") if (p / "config.yaml").is_file() and (p / "state").is_dir()] if root.is_dir() else []
    if not runs:
        raise UsageError("--resume needs --output DIR (no run with a saved state found under runs/)")
    return max(runs, key=lambda p: p.stat().st_mtime)


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
    force: bool = typer.Option(False, "--force", help="Overwrite the run files of an existing --output."),
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

      sdnet train                                   # sdnet18 on the bundled digits, offline: 5 epochs, ~100 s of CPU time

      sdnet train --dataset cifar10 --data-root ~/data      # the paper's CIFAR-10 recipe (220 epochs)

      sdnet train --config configs/cifar100.yaml --model sdnet18_all --set model.lmbd=0.2 --epochs 10

      sdnet train --resume --output runs/digits-sdnet18-20261125-101500

      torchrun --nproc_per_node 8 -m sdnet_cli train --dataset imagenet --data-root /data/imagenet --sync-bn
    """
    flags = {
        "data.dataset": dataset, "model.name": model, "data.root": data_root, "train.epochs": epochs,
        "train.batch_size": batch_size, "optim.lr": lr, "train.device": device, "train.amp": amp,
        "train.channels_last": channels_last, "train.compile": compile_, "model.sync_bn": sync_bn,
        "data.workers": workers, "train.seed": seed, "data.download": False if no_download else None,
    }
    if resume:
        out = Path(output) if output else _latest_run()
        if config is not None:
            raise UsageError("--resume continues with the run's own config.yaml; drop --config")
        flags["train.output"] = str(out)
        cfg = resolve_config(out / "config.yaml" if (out / "config.yaml").is_file() else None, flags, set_ or [])
        if not (out / "config.yaml").is_file():
            raise MissingFileError(f"cannot resume: {out} is not a run directory (no config.yaml)")
    else:
        flags["train.output"] = output
        cfg = resolve_config(config, flags, set_ or [])
    is_main = int(os.environ.get("RANK", "0")) == 0
    progress = RichProgress(quiet=not is_main)
    try:
        result = train(cfg, resume=resume, force=force, callbacks=progress)
    except TrainingInterrupted as e:
        progress.close()
        if is_main:
            console.print(f"[yellow]interrupted[/]: state saved; continue with: sdnet train --resume --output {escape(str(e.output))}")
        raise SystemExit(130)
    except NonFiniteLossError as e:
        progress.close()
        error_line(str(e))
        raise SystemExit(EXIT_BAD_INPUT)  # the issue lists a NaN loss with the bad-input cases
    finally:
        progress.close()
    if not is_main:
        return
    if json_out:
        d = dict(result.__dict__)
        print_json(d)
    out = result.output
    console.print(f"[bold green]done[/] in {result.seconds:.0f}s: test top-1 [bold]{result.top1:.2f}%[/] "
                  f"(best {result.best_top1:.2f}% at epoch {result.best_epoch}) -> {escape(out)}")
    console.print("next:\n"
                  f"  sdnet eval {out}\n"
                  f"  sdnet robust {out} --corruptions noise\n"
                  f"  sdnet visualize {out}\n"
                  f"  sdnet export {out} --output {out}/export")
    sys.stdout.flush()

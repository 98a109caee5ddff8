"""Rich progress for ``sdnet train``: epoch and batch bars on stderr and one line per epoch (rank 0 only)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..engine.callbacks import Callbacks
from .common import console, styled


class LazyProgress(Progress):
    """A rich progress display that appears with its first task: a command that stops before any work (a bad
    value, a missing file) prints its one error line and no empty progress line before it."""

    def __enter__(self) -> "LazyProgress":
        return self

    def __exit__(self, *_: object) -> None:
        if self.live.is_started:
            self.stop()

    def add_task(self, *args: Any, **kwargs: Any) -> Any:
        if not self.live.is_started:
            self.start()
        return super().add_task(*args, **kwargs)


def start_line(info: dict[str, Any]) -> str:
    """What the run is, where it runs (threads and memory reuse on CPU) and where it writes (markup for
    :func:`~sdnet_cli.cli.common.styled`, user values escaped)."""
    if info["world"] > 1:
        where = f"{info['device']} x{info['world']} processes"
    else:
        where = f"{info['device']}, {info['threads']} threads"
    if info["device"] == "cpu":
        where += ", memory reuse " + ("on" if info["memory_reuse"] else "off")
    val = f", {info['val_images']} held out for validation" if info["val_images"] else ""
    resumed = info.get("resumed_at")
    note = f" (resuming epoch {resumed[0] + 1}, batch {resumed[1]})" if resumed else ""
    return (f"training [bold]{escape(info['model'])}[/] on [bold]{escape(info['dataset'])}[/] "
            f"({info['train_images']} images{val}, "
            f"{info['image_size']}x{info['image_size']}; best/ selected on {info['selected_on']}) on {where} "
            f"-> {escape(info['output'])}{note}")


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One finished epoch: training, validation (when held out) and test metrics; ``*`` = a new best/."""
    val = f"val loss {row['val_loss']:.4f} top-1 {row['val_top1']:5.2f}%  " if "val_top1" in row else ""
    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_top1']:5.2f}%  {val}"
            f"test loss {row['test_loss']:.4f} top-1 {row['test_top1']:5.2f}% top-5 {row['test_top5']:5.2f}%  "
            f"lr {row['lr']:.3g}  {row['time']:.1f}s ({row['images_per_s']:.0f} img/s){' *' if row['best'] else ''}")


class RichProgress(Callbacks):
    """Epoch and batch bars (loss, accuracy, img/s, ETA) and the start/epoch lines."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.progress: Progress | None = None
        self.epochs = 0
        self.batch_task: Any = None

    def on_start(self, info: dict[str, Any]) -> None:
        self.quiet = self.quiet or not info["is_main"]
        self.epochs = int(info["epochs"])
        if self.quiet:
            return
        console.print(styled(start_line(info)))
        for warning in info.get("warnings", ()):
            console.print(styled(f"[yellow]warning:[/] {escape(warning)}"), soft_wrap=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
        )
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs", total=self.epochs, stats="")

    def on_epoch_start(self, epoch: int, steps: int, done: int) -> None:
        if self.progress is None:
            return
        self.progress.update(self.epoch_task, completed=epoch)
        if self.batch_task is not None:
            self.progress.remove_task(self.batch_task)
        self.batch_task = self.progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps, completed=done, stats="")

    def on_batch(self, row: dict[str, Any]) -> None:
        if self.progress is None or self.batch_task is None:
            return
        stats = f"loss {row['loss']:.3f} acc {row['top1']:5.1f}% {row['images_per_s']:6.0f} img/s lr {row['lr']:.3g}"
        self.progress.update(self.batch_task, completed=row["batch"], stats=stats)

    def on_eval_start(self, images: int) -> None:
        if self.progress is not None and self.batch_task is not None:
            self.progress.update(self.batch_task, stats=f"evaluating {images} images")

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.update(self.epoch_task, completed=row["epoch"])
        console.print(epoch_line(row, self.epochs))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

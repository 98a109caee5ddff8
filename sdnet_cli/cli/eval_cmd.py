"""``sdnet eval MODEL``: top-1, top-5, loss, per-class accuracy and throughput on a test split."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..engine.eval_model import EvalOptions, evaluate
from .default_run import model_or_newest_run
from .common import console, print_json, styled
from .renamed_flag import old_flag_option, renamed_flag


def eval_command(
    model: Optional[str] = typer.Argument(None, metavar="MODEL", help="Run dir, model dir, zoo name or Hub repo ORG/REPO or ORG/REPO@REV (default: the newest finished run under runs/)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset (default: the one the model was trained on)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the dataset."),
    lmbd: Optional[float] = typer.Option(None, "--lambda", help="Test-time λ of the CSC layers (see --lambda-layers)."),
    lmbd_layers: Optional[str] = typer.Option(None, "--lambda-layers", help="first (default) | all: which CSC layers get --lambda."),
    old_lmbd: Optional[float] = old_flag_option("--lmbd", "--lambda"),
    old_lmbd_layers: Optional[str] = old_flag_option("--lmbd-layers", "--lambda-layers"),
    batch_size: int = typer.Option(256, "--batch-size", help="Evaluation batch size."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size (default: the training size)."),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes."),
    no_download: bool = typer.Option(False, "--no-download", help="Never download datasets."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON result object on stdout."),
) -> None:
    """Evaluate a model on the test split of its dataset.

    Examples:

      sdnet eval                                    # the newest finished run under runs/

      sdnet eval runs/digits-sdnet18-20261125-101500

      sdnet eval runs/digits-sdnet18-20261125-101500 --lambda 0.5 --json

      sdnet eval sdnet18-cifar10 --data-root ~/data --lambda 0.3 --lambda-layers all
    """
    lmbd = renamed_flag(lmbd, old_lmbd, "--lambda", "--lmbd", "eval")
    lmbd_layers = renamed_flag(lmbd_layers, old_lmbd_layers, "--lambda-layers", "--lmbd-layers", "eval", "first")
    opts = EvalOptions(model=model_or_newest_run(model), dataset=dataset, data_root=data_root, lmbd=lmbd, lmbd_layers=lmbd_layers,
                       batch_size=batch_size, device=device, image_size=image_size, workers=workers,
                       download=not no_download)
    progress = Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("eval", total=None)

    def advance(n: int) -> None:  # the bar appears with the first batch, after the checks and the loading
        if not progress.live.is_started:
            progress.start()
        progress.advance(task, n)

    try:
        res = evaluate(opts, on_batch=advance).to_dict()
    finally:
        if progress.live.is_started:
            progress.stop()
    if json_out:
        print_json(res)
        return
    lmbd_text = f", λ={res['lmbd']:g} ({res['lmbd_layers']} CSC layer{'s' if res['lmbd_layers'] == 'all' else ''})" if res["lmbd"] is not None else ""
    console.print(styled(f"[bold]{escape(res['architecture'])}[/] from {escape(res['model_dir'])} on "
                         f"{escape(str(res['dataset']))} test ({res['images']} images, {res['image_size']}x"
                         f"{res['image_size']}, {res['device']}{escape(lmbd_text)})"))
    console.print(styled(f"top-1 [bold]{res['top1']:.2f}%[/]  top-5 {res['top5']:.2f}%  loss {res['loss']:.4f}  "
                         f"{res['images_per_s']:.0f} img/s"))
    if res["recorded_top1"] is not None and res["lmbd"] is None:
        console.print(f"recorded at training time: top-1 {res['recorded_top1']:.2f}%")
    if res["selected_on"] is not None:
        console.print(f"checkpoint selected on the {res['selected_on']} split")
    per = res["per_class"]
    if len(per) <= 20:
        table = Table(title="per-class top-1 (%)")
        for i in range(len(per)):
            table.add_column(str(i), justify="right")
        table.add_row(*[f"{v:.1f}" if v is not None else "-" for v in per])
        console.print(table)
    else:
        shown = [(i, v) for i, v in enumerate(per) if v is not None]
        worst = sorted(shown, key=lambda t: t[1])[:5]
        console.print("worst classes: " + ", ".join(f"{i}: {v:.1f}%" for i, v in worst))

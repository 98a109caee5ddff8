"""``sdnet bench``: speed (img/s, ms/step) and peak memory of models, side by side in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from ..bench import DEFAULT_MODELS, BenchOptions, BenchReport, run
from .common import console, print_json
from .renamed_flag import old_flag_option, renamed_flag


def _table(report: BenchReport) -> Table:
    s = report.settings
    flags = " ".join(f for f, on in (("amp", s["amp"]), ("channels-last", s["channels_last"]),
                                     ("compile", s["compile"])) if on)
    table = Table(title=f"sdnet bench: {s['mode']}, batch {s['batch_size']}, {s['image_size']}x{s['image_size']}, "
                        f"{report.machine}{', ' + flags if flags else ''}")
    table.title = Text(str(table.title))  # the machine's name is printed as it is
    for col in ("model", "params", "img/s", "ms/step", "ratio", "step size", "memory MB", "mem ratio"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in report.results:
        share = f"{r.step_size_ms:.1f} ms ({100 * r.step_size_share:.1f} %)" if r.step_size_ms is not None else "-"
        mem = f"{r.memory_mb:.0f}" if r.memory_mb is not None else "-"
        mr = f"{r.memory_ratio:.3f}" if r.memory_ratio is not None else "-"
        table.add_row(r.model, f"{r.params:,}", f"{r.img_per_s:.1f}", f"{r.ms_per_step:.1f}", f"{r.ratio:.3f}",
                      share, mem, mr)
    return table


def bench_command(
    models: str = typer.Option(",".join(DEFAULT_MODELS), "--models", "-m", help="Comma-separated model names; ratios are to the first."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per step."),
    image_size: int = typer.Option(32, "--image-size", help="Input height and width (random images)."),
    mode: str = typer.Option("train", "--mode", help="train (forward + backward + SGD step + step-size tracking) | eval (forward, no grad)."),
    steps: int = typer.Option(10, "--steps", help="Timed interleaved rounds per model (the median is reported)."),
    warmup: int = typer.Option(2, "--warmup", help="Untimed steps per model first."),
    inner: Optional[int] = typer.Option(None, "--inner", help="Steps per timed block (default 1 on CPU, 10 on CUDA)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    amp: bool = typer.Option(False, "--amp", help="Autocast the forward to bf16 (fp16 + grad scaling on GPUs without bf16)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Model and inputs in channels_last memory format."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile each model first."),
    num_classes: int = typer.Option(10, "--num-classes", help="Classifier size."),
    stem_type: Optional[str] = typer.Option(None, "--stem-type", help="cifar | imagenet (default cifar)."),
    old_stem: Optional[str] = old_flag_option("--stem", "--stem-type"),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory (CPU: one child process per model)."),
    step_sizes: bool = typer.Option(True, "--step-sizes/--no-step-sizes", help="Train steps include the engine's step-size tracking (timed on its own too)."),
    recompute: bool = typer.Option(False, "--recompute", help="CSC layers save less for backward and recompute it (less memory, slower)."),
    memory_reuse: bool = typer.Option(True, "--memory-reuse/--no-memory-reuse", help="On CPU keep freed tensor memory in the process (glibc mallopt)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON result to this file."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON result object on stdout."),
) -> None:
    """Time models side by side: img/s, ms/step, peak memory, parameters, ratios to the first model.

    The models take turns within one process (interleaved rounds, median per model); a model's ratio is the median over rounds of its time over the first model's time in the same round, so load from other programs hits both sides of each ratio alike. A train step includes what sdnet train does after that optimizer step in the steady state (the step-size tracking of the CSC layers whose turn it is); its mean per step and share are the "step size" column. Peak memory is the CUDA allocator's on GPU and a child process's peak RSS on CPU (runtime excluded).

    Examples:

      sdnet bench

      sdnet bench --models resnet18,sdnet18 --batch-size 64 --mode eval --steps 20 --json

      sdnet bench --device cuda --batch-size 128 --amp --channels-last --compile -o bench.json
    """
    opts = BenchOptions(models=models, batch_size=batch_size, image_size=image_size, mode=mode, device=device,
                        amp=amp, channels_last=channels_last, compile=compile_, num_classes=num_classes,
                        stem_type=renamed_flag(stem_type, old_stem, "--stem-type", "--stem", "bench", "cifar"),
                        steps=steps, warmup=warmup, inner=inner, memory=memory, step_sizes=step_sizes,
                        memory_reuse=memory_reuse, recompute=recompute, output=None if output is None else str(output))
    with console.status("benchmarking") as status:

        def progress(message: str) -> None:  # phases update the spinner; the memory-reuse note stays on screen
            (console.print if message.startswith("CPU memory") else status.update)(Text(message))

        report = run(opts, on_progress=progress)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(_table(report))
    if output is not None:
        console.print(f"wrote {output}")

"""``sdnet robust``: accuracy under corruptions and attacks, against test-time λ, for one or more models."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..data.corruptions import SDNET_LEVELS, parse_corruptions, parse_severities
from .common import UsageError, console, print_json

DEFAULT_LAMBDAS = "0.1:1.4:0.1"


def parse_lambdas(spec: str) -> list[float]:
    """``'0.1:1.4:0.1'`` (start:stop:step, stop included), ``'0.1,0.5,1'`` or ``'none'`` → λ values ≥ 0."""
    spec = spec.strip()
    if spec.lower() in ("", "none", "off"):
        return []
    try:
        if ":" in spec:
            start, stop, step = (float(v) for v in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            values = [round(start + i * step, 10) for i in range(count)]
        else:
            values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"bad --lambdas {spec!r}: use start:stop:step (e.g. 0.1:1.4:0.1) or a list (0.1,0.5,1)") from None
    if any(v < 0 for v in values):
        raise UsageError(f"--lambdas must be >= 0, got {spec!r}")
    return values


def _labels(sources: list[str]) -> list[str]:
    out: list[str] = []
    for src in sources:
        p = Path(src)
        name = f"{p.parent.name}/{p.name}" if p.name in ("best", "last") and p.parent.name else (p.name or src)
        label, k = name, 2
        while label in out:
            label, k = f"{name}#{k}", k + 1
        out.append(label)
    return out


class _Bar:
    """Adapter from the runner's progress protocol to a rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(escape(description), total=max(total, 1))

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def _table(report: dict[str, Any]) -> Table:
    t = Table(title=f"{report['model']} ({report['architecture']}, training λ = {_fmt(report['training_lambda'], 'g')})")
    t.add_column("corruption", no_wrap=True, min_width=14)
    for col in ("sev", "acc@train λ", "best λ", "acc@best λ", "auto λ", "acc@auto λ", "‖x−Dz‖²"):
        t.add_column(col, justify="right")
    for c in report["summary"]["per_condition"]:
        sev = "-" if c["severity"] == 0 else str(c["severity"])
        if "param" in c:
            sev += f" ({c['param']:g})"
        t.add_row(c["corruption"], sev, _fmt(c["acc_train"]), _fmt(c["best_lambda"], "g"), _fmt(c["acc_best"]),
                  _fmt(c["auto_lambda_mean"], ".2f"), _fmt(c["acc_auto"]), _fmt(c["recon_error_train"], ".4g"))
    m = report["summary"]["means"]
    t.add_section()
    t.add_row("mean (corrupted)", "", _fmt(m["train"]["mean"]), "", _fmt(m["best"]["mean"]), "", _fmt(m["auto"]["mean"]), "")
    if m["train"]["complete"]:
        t.add_row("RobustBench 15×5", "", _fmt(m["train"]["robustbench"]), "", _fmt(m["best"]["robustbench"]), "",
                  _fmt(m["auto"]["robustbench"]), "")
    return t


def _attack_table(report: dict[str, Any]) -> Table | None:
    rows = [a for a in report["summary"].get("attack", []) if a["mode"] in ("sweep", "train")]
    if not rows:
        return None
    t = Table(title=f"{report['model']}: {rows[0]['attack']}")
    for col in ("ε", "λ", "accuracy"):
        t.add_column(col, justify="right")
    seen = set()
    for a in rows:
        key = (a["eps"], a["lambda"])
        if key not in seen:
            seen.add(key)
            t.add_row(f"{a['eps']:.4g}", _fmt(a["lambda"], "g"), _fmt(a["accuracy"]))
    return t


def robust_command(
    models: list[str] = typer.Argument(..., metavar="MODEL...", help="Run dir, model dir, zoo name or Hub repo ORG/REPO or ORG/REPO@REV; several are compared."),
    corruptions: Optional[str] = typer.Option(None, "--corruptions", "-c", help="all | benchmark | noise | blur | weather | digital | extra | comma list of names (default: noise; sdnet-noise: its 4 noises)."),
    severities: Optional[str] = typer.Option(None, "--severities", "-s", help="1-5 or a list like 3,5 (sdnet-noise: its levels, default all)."),
    protocol: str = typer.Option("cifar-c", "--protocol", help="cifar-c (CIFAR-10-C parameters) | sdnet-noise (the SDNet paper's noise levels)."),
    cifar_c_dir: Optional[Path] = typer.Option(None, "--cifar-c-dir", help="Folder of the distributed CIFAR-10-C/100-C .npy files (else generated on the fly)."),
    download: bool = typer.Option(False, "--download", help="Fetch the official CIFAR-10-C/100-C archive into --cifar-c-dir (resumable, md5-checked)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Clean test set (default: the model's training dataset)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the clean dataset lives."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Image size (default: the size the model was trained at)."),
    lambdas: str = typer.Option(DEFAULT_LAMBDAS, "--lambdas", help="Test-time λ sweep: start:stop:step, a list, or none."),
    lmbd_layers: str = typer.Option("first", "--lmbd-layers", help="first | all: which CSC layers get the test-time λ."),
    auto_lambda: bool = typer.Option(False, "--auto-lambda", help="Per-sample λ from the reconstruction error (fit written to lambda_fit.json)."),
    lambda_fit: Optional[Path] = typer.Option(None, "--lambda-fit", help="Reuse a lambda_fit.json instead of calibrating (implies --auto-lambda)."),
    calib_images: int = typer.Option(128, "--calib-images", help="Clean training images used to calibrate the per-sample λ fit."),
    attack: Optional[str] = typer.Option(None, "--attack", help="pgd-linf | pgd-l2: white-box PGD on the clean test set, at each λ."),
    eps: str = typer.Option("8/255", "--eps", help="Attack radius in [0,1] pixel units; a list like 0,2/255,8/255."),
    steps: int = typer.Option(10, "--steps", help="PGD steps."),
    step_size: Optional[float] = typer.Option(None, "--step-size", help="PGD step α (default 2.5·ε/steps)."),
    max_images: Optional[int] = typer.Option(None, "--max-images", help="Evaluate a seeded subset of this many images per condition."),
    batch_size: int = typer.Option(500, "--batch-size", help="Evaluation batch size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated corruptions, subsets and attacks."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto."),
    output: Path = typer.Option(Path("robust-results"), "--output", "-o", help="Folder for results.json/csv, plots and lambda_fit.json."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Accuracy of MODEL(s) on corrupted data and under attack, against the test-time λ of the CSC layers.

    Corrupted data: the distributed CIFAR-10-C/100-C files (--cifar-c-dir, --download), the 19 CIFAR-C
    corruptions generated on the fly from the clean test set (any dataset, e.g. the bundled digits), or
    the SDNet paper's noise protocol (--protocol sdnet-noise). For each corruption and severity the table
    gives the accuracy at the training λ, at the best λ of the sweep (an oracle chosen on the test images)
    and, with --auto-lambda, at a per-sample λ predicted from the first layer's reconstruction error.

    Examples:

      sdnet robust runs/digits --corruptions noise --auto-lambda

      sdnet robust runs/resnet18 runs/sdnet18 --corruptions all --severities 3,5 --lambdas 0.1,0.5,1.0

      sdnet robust runs/cifar_sdnet18 --cifar-c-dir data/CIFAR-10-C --corruptions benchmark --auto-lambda

      sdnet robust runs/cifar_sdnet18 --cifar-c-dir data --download --corruptions noise

      sdnet robust runs/digits --protocol sdnet-noise --auto-lambda --lambda-fit robust-results/lambda_fit.json

      sdnet robust runs/digits --attack pgd-linf --eps 0,1/255,2/255,4/255 --steps 10 --lambdas 0.1,0.5,1.0
    """
    from ..data.datasets import load_raw_images
    from ..models.load import load_model_with_config
    from ..robust.attacks import NORMS, parse_eps
    from ..robust.conditions import check_protocol, levels_for
    from ..robust.plots import comparison_plot, write_plots
    from ..robust.report import write_comparison, write_report
    from ..robust.runner import RobustOptions, run_model

    if protocol not in ("cifar-c", "sdnet-noise"):
        raise UsageError(f"unknown --protocol {protocol!r}; valid: cifar-c, sdnet-noise")
    if lmbd_layers not in ("first", "all"):
        raise UsageError(f"--lmbd-layers must be first or all, got {lmbd_layers!r}")
    if attack is not None and attack not in NORMS:
        raise UsageError(f"unknown --attack {attack!r}; valid: {', '.join(NORMS)}")
    if protocol == "sdnet-noise" and (cifar_c_dir or download):
        raise UsageError("--protocol sdnet-noise generates its noise on the fly; drop --cifar-c-dir/--download")
    if download and cifar_c_dir is None:
        raise UsageError("--download needs --cifar-c-dir DIR (where to put the archive)")
    for name, v in (("--steps", steps), ("--batch-size", batch_size), ("--calib-images", calib_images)):
        if v < (0 if name == "--steps" else 1):
            raise UsageError(f"{name} must be positive, got {v}")
    if max_images is not None and max_images < 1:
        raise UsageError(f"--max-images must be >= 1, got {max_images}")
    default_corr = ",".join(SDNET_LEVELS) if protocol == "sdnet-noise" else "noise"
    names = parse_corruptions(corruptions or default_corr)
    check_protocol(protocol, names, [])
    levels = None if severities is None else parse_severities(severities, 10 if protocol == "sdnet-noise" else 5)
    for name in names:
        levels_for(protocol, name, levels)
    grid = parse_lambdas(lambdas)
    eps_values = parse_eps(eps)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"

    loaded = [load_model_with_config(src) for src in models]
    if cifar_c_dir is not None and not download:
        from ..data.cifar_c import validate_cifar_c_dir

        validate_cifar_c_dir(cifar_c_dir, names, dataset or loaded[0][1].dataset)
    labels = _labels(models)
    start = time.time()
    reports = []
    output.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=json_out) as progress:
        cdir = cifar_c_dir
        if download and cifar_c_dir is not None:
            from ..data.cifar_c import download_cifar_c

            ds = dataset or loaded[0][1].dataset or "cifar10"
            task = progress.add_task(f"downloading {ds} corruptions", total=None)
            cdir = download_cifar_c(cifar_c_dir, ds, lambda done, total: progress.update(task, completed=done, total=total))
        for (model, config), label in zip(loaded, labels):
            ds = dataset or config.dataset
            if ds is None:
                raise UsageError(f"{label}: its config.json names no dataset; pass --dataset NAME")
            size = image_size or (config.metrics or {}).get("image_size")
            opts = RobustOptions(
                corruptions=names, severities=levels, protocol=protocol, cifar_c_dir=None, lambdas=grid,
                lmbd_layers=lmbd_layers, auto_lambda=auto_lambda or lambda_fit is not None, lambda_fit=lambda_fit,
                calib_images=calib_images, attack=attack, eps=eps_values, steps=steps, step_size=step_size,
                seed=seed, batch_size=batch_size, max_images=max_images, device=device)
            clean = calib = None
            notes: list[str] = []
            if cdir is not None:
                from ..data.cifar_c import resolve_cifar_c_dir

                opts.cifar_c_dir = resolve_cifar_c_dir(cdir, ds)
                try:
                    clean = load_raw_images(ds, "test", data_root, image_size=size, download=False)
                except (ValueError, FileNotFoundError) as e:
                    notes.append(f"clean test set not evaluated ({e})")
            else:
                clean = load_raw_images(ds, "test", data_root, image_size=size)
            if attack and clean is None:
                raise UsageError("--attack needs the clean test set; pass --data-root where it lives")
            if opts.auto_lambda and lambda_fit is None:
                calib = load_raw_images(ds, "train", data_root, image_size=size, download=cdir is None)
            out_dir = output if len(loaded) == 1 else output / label.replace("/", "_")
            out_dir.mkdir(parents=True, exist_ok=True)
            report = run_model(model, config, opts, label, clean, calib, _Bar(progress),
                               fit_out=out_dir / "lambda_fit.json" if lambda_fit is None else None)
            report["notes"] = notes + report["notes"]
            report["seconds"] = round(time.time() - start, 1)
            files = write_report(report, out_dir)
            if plots:
                files += write_plots(report, out_dir)
            if (out_dir / "lambda_fit.json").is_file() and lambda_fit is None and opts.auto_lambda:
                files.append(out_dir / "lambda_fit.json")
            report["files"] = [str(f) for f in files]
            reports.append(report)
    extra_files: list[Path] = []
    if len(reports) > 1:
        extra_files = write_comparison(reports, output)
        if plots:
            p = comparison_plot(reports, output / "comparison.png")
            extra_files += [p] if p else []
    elapsed = time.time() - start
    if json_out:
        if len(reports) == 1:
            print_json(reports[0])
        else:
            from ..robust.report import comparison

            print_json({"models": reports, "comparison": comparison(reports), "files": [str(f) for f in extra_files],
                        "seconds": round(elapsed, 1)})
        return
    for rep in reports:
        console.print(_table(rep))
        at = _attack_table(rep)
        if at is not None:
            console.print(at)
        for note in rep["notes"]:
            console.print(f"[yellow]note:[/] {escape(note)}")
        g = rep["summary"]["gains"]
        parts = [f"{what} {g[key]:+.1f} points" for what, key in (("best λ (oracle)", "best_minus_train"),
                                                                    ("per-sample λ", "auto_minus_train"))
                 if g[key] is not None and (key != "best_minus_train" or rep["lambdas"])]
        if parts:
            console.print(f"{escape(rep['model'])}: mean gain over the training λ — " + ", ".join(parts))
    console.print(f"wrote {escape(str(output))} ({elapsed:.0f} s)")

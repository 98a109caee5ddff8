"""``sdnet robust``: flags → :class:`~sdnet_cli.robust.RobustOptions` → :func:`sdnet_cli.robust.run` → tables."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from ..netio import DEFAULT_RETRIES, DEFAULT_TIMEOUT
from ..robust.attacks import ATTACKS, parse_eps
from ..robust.options import DEFAULT_LMBD_SPEC, RobustOptions, parse_lmbds
from .common import console, print_json
from .default_run import model_or_newest_run
from .progress import LazyProgress
from .renamed_flag import old_flag_option, renamed_flag
from .robust_tables import Bar, render


def robust_command(
    models: Optional[list[str]] = typer.Argument(None, metavar="MODEL", help="Run dir, model dir, zoo name or Hub repo ORG/REPO or ORG/REPO@REV; several are compared (default: the newest finished run under runs/)."),
    corruptions: Optional[str] = typer.Option(None, "--corruptions", "-c", help="all | benchmark | noise | blur | weather | digital | extra | comma list of names (default: noise; sdnet-noise: its 4 noises)."),
    severities: Optional[str] = typer.Option(None, "--severities", "-s", help="all (default) | 1-5 | 3,5 | per corruption NAME=LEVELS;NAME=LEVELS (sdnet-noise: 10 levels, speckle 6)."),
    protocol: str = typer.Option("cifar-c", "--protocol", help="cifar-c (CIFAR-10-C parameters) | sdnet-noise (the SDNet paper's noise levels)."),
    cifar_c_dir: Optional[Path] = typer.Option(None, "--cifar-c-dir", help="Folder of the distributed CIFAR-10-C/100-C .npy files (else generated on the fly)."),
    download: bool = typer.Option(False, "--download", help="Fetch the official CIFAR-10-C/100-C archive into --cifar-c-dir (resumable, md5-checked)."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", metavar="SECONDS", help=f"--download: give up on a connection with no new data for this long (then up to {DEFAULT_RETRIES} retries)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Clean test set (default: the model's training dataset)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the clean dataset lives."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Image size (default: the size the model was trained at)."),
    lmbds: str = typer.Option(DEFAULT_LMBD_SPEC, "--lambdas", help="Test-time λ sweep: start:stop:step, a list, or none."),
    lmbd_layers: Optional[str] = typer.Option(None, "--lambda-layers", help="first (default) | all: which CSC layers get the test-time λ."),
    old_lmbd_layers: Optional[str] = old_flag_option("--lmbd-layers", "--lambda-layers"),
    auto_lmbd: bool = typer.Option(False, "--auto-lambda", help="Per-sample λ from the reconstruction error, fitted on held-out training images (lambda_fit.json)."),
    lmbd_fit: Optional[Path] = typer.Option(None, "--lambda-fit", help="Reuse a lambda_fit.json instead of calibrating (implies --auto-lambda)."),
    calib_images: int = typer.Option(512, "--calib-images", help="Held-out training images used to calibrate the per-sample λ fit."),
    recalibrate_bn: int = typer.Option(0, "--recalibrate-bn", help="Re-estimate every BatchNorm's statistics at each test-time λ on N held-out training images (0: off)."),
    attack: Optional[str] = typer.Option(None, "--attack", help=f"{' | '.join(ATTACKS)} on the clean test set (autoattack/apgd-*/square: pip install \"sdnet[attacks]\")."),
    norm: str = typer.Option("linf", "--norm", help="linf | l2: threat model of autoattack/apgd-*/square."),
    eps: str = typer.Option("8/255", "--eps", help="Attack radius in [0,1] pixel units; a list like 0,2/255,8/255."),
    steps: int = typer.Option(10, "--steps", help="PGD steps."),
    step_size: Optional[float] = typer.Option(None, "--step-size", help="PGD step α (default 2.5·ε/steps)."),
    checks: bool = typer.Option(True, "--checks/--no-checks", help="Gradient-masking checks with every attack."),
    max_images: Optional[int] = typer.Option(None, "--max-images", help="Evaluate a seeded subset of this many images per condition."),
    batch_size: int = typer.Option(500, "--batch-size", help="Evaluation batch size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated corruptions, subsets and attacks."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto."),
    output: Path = typer.Option(Path("robust-results"), "--output", "-o", help="Folder for results.json/csv, plots and lambda_fit.json (new, empty, or an earlier robust output: replaced whole, other files kept)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Accuracy of MODEL(s) on corrupted data and under attack, against the test-time λ of the CSC layers.

    Corruptions: CIFAR-10-C/100-C files (--cifar-c-dir, --download), generated on the fly (any dataset), or
    the SDNet paper's noise (--protocol sdnet-noise). Per condition: accuracy at the training λ, the best λ
    of the sweep (an oracle) and the per-sample λ (--auto-lambda). Attacks: robust accuracy per ε, the
    per-sample λ attacked non-adaptively and adaptively, and gradient-masking checks.

    Examples:

      sdnet robust runs/digits --corruptions noise --auto-lambda --recalibrate-bn 128

      sdnet robust runs/cifar_sdnet18 --cifar-c-dir data --download --corruptions noise

      sdnet robust runs/digits --protocol sdnet-noise --severities all --auto-lambda

      sdnet robust runs/digits --attack autoattack --eps 8/255 --max-images 100 --auto-lambda --lambdas 0.1,0.5,1
    """
    opts = RobustOptions(
        models=tuple(models or [model_or_newest_run(None)]), corruptions=corruptions, severities=severities, protocol=protocol,
        cifar_c_dir=cifar_c_dir, download=download, timeout=timeout, dataset=dataset, data_root=data_root, image_size=image_size,
        lmbds=parse_lmbds(lmbds), auto_lmbd=auto_lmbd, lmbd_fit=lmbd_fit,
        lmbd_layers=renamed_flag(lmbd_layers, old_lmbd_layers, "--lambda-layers", "--lmbd-layers", "robust", "first"),
        calib_images=calib_images, recalibrate_bn=recalibrate_bn, attack=attack, norm=norm, eps=tuple(parse_eps(eps)),
        steps=steps, step_size=step_size, checks=checks, max_images=max_images, batch_size=batch_size, seed=seed,
        device=device, output=output, plots=plots)
    from ..robust import run

    with LazyProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=json_out) as progress:
        report = run(opts, Bar(progress))
    if json_out:
        print_json(report.to_json())
        return
    render(report, console)

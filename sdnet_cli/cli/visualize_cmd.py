"""`sdnet visualize`: dictionaries, decoded hidden features, sparsity, FISTA convergence and λ effects as PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from .common import UsageError, console, print_json
from .default_run import model_or_newest_run


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--lambdas must be comma-separated numbers >= 0 (e.g. 0,0.1,0.5,1), got {text!r}") from None


def visualize_command(
    model: Optional[str] = typer.Argument(None, metavar="MODEL", help="Run dir, model dir, zoo name or Hub repo ORG/REPO or ORG/REPO@REV (default: the newest finished run under runs/)."),
    what: str = typer.Option("all", "--what", help="Comma list of: dictionary, features, sparsity, convergence, lambda (or all)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset of the test images (default: the model's)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Where the dataset lives (downloaded datasets)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size (default: the training size)."),
    num_images: int = typer.Option(8, "--num-images", "-n", help="Test images to show and to compute statistics on."),
    output: Path = typer.Option(Path("viz"), "--output", "-o", help="Folder for the PNGs, JSON files and index.html (new, empty, or an earlier visualize output: replaced whole, other files kept)."),
    decode: str = typer.Option("auto", "--decode", help="features: 'stack' (whole-stack inversion, sdnet*_all without "
                               "shortcut), 'layer' (D z of the first CSC layer) or 'auto'."),
    layers: Optional[str] = typer.Option(None, "--layers", help="features: comma list of points for whole-stack "
                                         "decoding (layer0, layer2, layer3.1, ...). Default: stem and end of each stage."),
    lmbds: str = typer.Option("0,0.01,0.05,0.1,0.2,0.5,1,2", "--lambdas", help="lambda: comma list of λ values."),
    max_steps: int = typer.Option(50, "--max-steps", help="convergence: FISTA iterations to plot (1…N)."),
    opt_steps: int = typer.Option(300, "--opt-steps", help="convergence: iterations used to estimate the optimum F*."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for this command (0: torch's default)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object on stdout."),
) -> None:
    """Interpretability figures of an SDNet, and an index.html that shows them all with captions.

    dictionary: the first CSC layer's atoms, sorted by how often the codes use them.

    features: the sparse codes at the stem and at the end of each stage decoded back to image space, through the whole stack (inverse BatchNorm and D z down to the input) for sdnet18_all/sdnet34_all built with shortcut=False, else through the first CSC layer (D z); min-max and histogram-equalised views.

    sparsity: non-zero fraction and value histogram of every CSC layer's code (PNG + JSON).

    convergence: lasso objective vs FISTA iteration 1..50 against the optimum, every CSC layer.

    lambda: the first layer's reconstruction error, sparsity and decoded images as lambda grows.

    Examples:

      sdnet visualize runs/digits --output viz/

      sdnet visualize runs/digits_all --what features --decode stack --layers layer0,layer1,layer2.1

      sdnet visualize runs/digits --what lambda,dictionary --lambdas 0,0.1,0.5,1,2 --json
    """
    from ..viz.run import VisualizeOptions, run

    opts = VisualizeOptions(
        model=model_or_newest_run(model), what=tuple(t for t in what.split(",")), output=output, dataset=dataset, data_root=data_root,
        image_size=image_size, num_images=num_images, decode=decode,
        points=tuple(p.strip() for p in layers.split(",") if p.strip()) if layers else None,
        lmbds=tuple(_floats(lmbds)), max_steps=max_steps, opt_steps=opt_steps, threads=threads)
    with console.status("visualizing") as status:
        report = run(opts, progress=lambda m: status.update(Text(f"visualize: {m}")))
    if json_out:
        print_json(report.summary)
    else:
        console.print(f"wrote {len(report.figures)} figures to {report.output} in {report.seconds} s; open {report.index}")

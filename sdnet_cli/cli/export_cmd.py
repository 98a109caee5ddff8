"""``sdnet export``: write a Hub-ready model directory (safetensors, config, model card, optional ONNX) and push it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from .common import console, print_json
from .default_run import model_or_newest_run
from .renamed_flag import old_flag_option, renamed_flag


def export_command(
    model: Optional[str] = typer.Argument(
        None, metavar="MODEL", help="Run dir, model dir, zoo name, ORG/REPO or ORG/REPO@REV, or an official .pth.tar checkpoint "
        "(default: the newest finished run under runs/)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write the exported model into (new, empty, or an earlier export: replaced whole, other files kept)."),
    formats: str = typer.Option("safetensors", "--format", help="Comma list: safetensors (always), onnx."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Official checkpoint only: sdnet18, sdnet18_all, …"),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", help="Official checkpoint only: classes."),
    stem_type: Optional[str] = typer.Option(None, "--stem-type",
                                            help="Official checkpoint only: cifar | imagenet (default: by --num-classes)."),
    old_stem: Optional[str] = old_flag_option("--stem", "--stem-type"),
    no_shortcut: bool = typer.Option(False, "--no-shortcut",
                                     help="Official checkpoint only: a *_all model without residual paths."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Training dataset (official: inferred)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="ONNX input size (default: training size)."),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", help="Upload the export to Hub repo ORG/NAME."),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
    revision: Optional[str] = typer.Option(None, "--revision", help="With --push-to-hub: branch to commit to."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Export a model as a Hub-ready directory: model.safetensors, config.json, README.md model card.

    Examples:

      sdnet export runs/digits --output exported/digits-sdnet18

      sdnet export runs/digits --output exported/digits-sdnet18 --format safetensors,onnx

      sdnet export model_best.pth.tar --arch sdnet18 --num-classes 10 --stem-type cifar --output sdnet18-cifar10

      sdnet export model_best.pth.tar --arch sdnet18_all --num-classes 100 --no-shortcut --output out
      --push-to-hub my-org/sdnet18_all-noshortcut-cifar100
    """
    from ..hub import ExportOptions, export

    options = ExportOptions(model_or_newest_run(model), output, formats=formats, arch=arch, num_classes=num_classes,
                            stem_type=renamed_flag(stem_type, old_stem, "--stem-type", "--stem", "export"),
                            shortcut=not no_shortcut, dataset=dataset, image_size=image_size,
                            push_to_hub=push_to_hub, private=private, revision=revision)
    with console.status("exporting …") as status:
        result = export(options, on_stage=lambda text: status.update(Text(text)))
    if json_out:
        print_json({"output": str(result.output), "files": result.files, "architecture": result.config.architecture,
                    "onnx_max_abs_diff": result.onnx_max_abs_diff, "commit_url": result.commit_url})
        return
    console.print(f"exported {result.config.architecture} → {result.output}: {', '.join(result.files)}", soft_wrap=True)
    if "model.onnx" in result.files:
        diff = result.onnx_max_abs_diff
        console.print("ONNX check: onnxruntime not installed (pip install 'sdnet[onnx]')" if diff is None
                      else f"ONNX check: max |onnxruntime − PyTorch| = {diff:.2e} (≤ 1e-4)")
    if result.commit_url:
        console.print(f"pushed {len(result.files)} files to {push_to_hub}")
        print(result.commit_url)

"""``sdnet models``: the model registry as a table."""

from __future__ import annotations

import typer
from rich.table import Table

from ..models.registry import describe_models
from .common import console, print_json


def models_command(json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
    """List the registered architectures with their parameter counts.

    Example: sdnet models --json
    """
    rows = describe_models()
    if json_out:
        print_json({"models": rows})
        return
    table = Table(title="sdnet models")
    for col in ("name", "CSC layers", "params (CIFAR-10)", "params (ImageNet)", "description"):
        table.add_column(col, justify="right" if col.startswith(("params", "CSC")) else "left")
    for r in rows:
        table.add_row(r["name"], str(r["csc_layers"]), f"{r['params_cifar10']:,}", f"{r['params_imagenet']:,}",
                      r["description"])
    console.print(table)

"""``sdnet pull-weights``: a zoo model or Hub repo into the Hub cache, verified; ``--list`` shows the zoo.

A zoo model not yet pinned on the Hub comes from its official Google Drive folder (converted locally).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, DownloadColumn, TaskID, TextColumn
from rich.table import Table

from ..netio import DEFAULT_TIMEOUT
from .common import UsageError, console, print_json
from .progress import LazyProgress


def _size(n: int | None, estimate: int) -> str:
    return f"≈{estimate / 2**20:.1f} MiB" if n is None else f"{n / 2**20:.1f} MiB"


_SOURCE = {"hub": "Hub", "drive": "official Drive", "none": "–"}
_CACHED = {"hub": "cached (Hub)", "drive": "cached (Drive)"}


def pull_weights_command(
    model: Optional[str] = typer.Argument(None, help="Zoo name (see --list), or Hub repo ORG/NAME or ORG/NAME@REV."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Hub cache directory (default: HF_HUB_CACHE)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit (same as @REVISION)."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", metavar="SECONDS",
                                  help="Give up after this long without new data (connect, reads, retries)."),
    list_zoo: bool = typer.Option(False, "--list",
                                  help="Show the zoo: accuracy, source (Hub / official Drive / cached), size."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Download a model's safetensors weights from the Hugging Face Hub and print its local model directory.

    Uses the huggingface_hub cache, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1.
    Weights are checked against the zoo's pinned sha256 or the Hub's sha256,
    then by content (safetensors header, config.json, finite weights).
    A zoo model not on the Hub yet is fetched from its official Google Drive
    folder (model_best.pth.tar, read without running code, converted); its
    sha256 is recorded at the first download and a changed file is refused.
    A download with no new data for --timeout seconds (default 60), or that
    fails 3 times, stops with one line saying what the server did.

    Examples:

      sdnet pull-weights --list

      sdnet pull-weights sdnet18-cifar10

      sdnet pull-weights my-org/my-sdnet@main --json

      sdnet eval "$(sdnet pull-weights my-org/my-sdnet)" --dataset cifar10
    """
    from ..hub import PullOptions, pull, zoo_rows

    if list_zoo:
        if model:
            raise UsageError("pass either a model or --list, not both")
        rows = zoo_rows(cache_dir)
        if json_out:
            print_json({"models": rows})
        else:
            console.print(_zoo_table(rows))
        return
    if not model:
        raise UsageError("name a model: a zoo name (sdnet pull-weights --list) or ORG/NAME[@REVISION]")
    options = PullOptions(model, cache_dir=cache_dir, revision=revision, timeout=timeout)
    with LazyProgress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), console=console,
                  transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        result = pull(options, progress)
    if json_out:
        print_json(result.to_dict())
        return
    if result.source == "drive":
        console.print(f"{result.name} from the official Google Drive file {result.revision[6:]} (model_best.pth.tar "
                      f"sha256 {result.original_sha256}): model.safetensors sha256 {result.sha256}",
                      soft_wrap=True, markup=False)
    else:
        console.print(f"{result.name} @ {result.revision[:12]}: model.safetensors sha256 {result.sha256}",
                      soft_wrap=True, markup=False)
    print(result.path)


def _zoo_table(rows: list[dict]) -> Table:
    orgs = sorted({r["repo_id"].split("/")[0] for r in rows})
    table = Table(title="sdnet model zoo (official accuracies, top-1 %)",
                  caption=f"Hub repos: {', '.join(o + '/<name>' for o in orgs)}; source –: no official link, "
                          "convert it with 'sdnet export'; ≈: float32 weights (size unknown until downloaded); "
                          "--json for repo, revision, sha256, Drive folder")
    for col in ("name", "accuracy", "source", "size"):
        table.add_column(col, justify="right" if col in ("accuracy", "size") else "left", no_wrap=True)
    for r in rows:
        source = _CACHED[r["source"]] if r["cached"] else _SOURCE[r["source"]]
        table.add_row(r["name"], f"{r['accuracy']:.2f}", source, _size(r["size"], r["size_estimate"]))
    return table

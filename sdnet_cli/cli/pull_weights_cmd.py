"""``sdnet pull-weights``: download a zoo model or Hub repo into the Hub cache, verified; ``--list`` shows the zoo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import UsageError, console, print_json


def _size(n: int | None, estimate: int) -> str:
    return f"≈{estimate / 2**20:.1f} MiB" if n is None else f"{n / 2**20:.1f} MiB"


def _zoo_rows(cache_dir: Optional[Path]) -> list[dict]:
    from ..hub.puller import default_cache_dir
    from ..hub.zoo import list_entries

    rows = []
    for e in list_entries():
        cached = None
        if e.published:
            from huggingface_hub import try_to_load_from_cache

            cache = str(cache_dir) if cache_dir else default_cache_dir()
            hit = try_to_load_from_cache(e.repo_id, e.filename, cache_dir=cache, revision=e.revision)
            cached = isinstance(hit, str)
        rows.append({"name": e.name, "architecture": e.architecture, "dataset": e.dataset, "accuracy": e.accuracy,
                     "repo_id": e.repo_id, "published": e.published, "revision": e.revision, "sha256": e.sha256,
                     "size": e.size, "size_estimate": e.estimated_size(), "cached": cached,
                     "export_command": e.export_command()})
    return rows


def pull_weights_command(
    model: Optional[str] = typer.Argument(None, help="Zoo name (see --list), or Hub repo ORG/NAME or ORG/NAME@REV."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Hub cache directory (default: HF_HUB_CACHE)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit (same as @REVISION)."),
    list_zoo: bool = typer.Option(False, "--list", help="Show the zoo: accuracy, published or not, size, cached."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Download a model's safetensors weights from the Hugging Face Hub and print its local model directory.

    Uses the huggingface_hub cache, HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=1 (cache only). The weights
    are checked against the zoo's pinned sha256, or the sha256 the Hub announces; a mismatch is refused.

    Examples:

      sdnet pull-weights --list

      sdnet pull-weights sdnet18-cifar10

      sdnet pull-weights my-org/my-sdnet@main --json

      sdnet eval "$(sdnet pull-weights my-org/my-sdnet)" --dataset cifar10
    """
    if list_zoo:
        if model:
            raise UsageError("pass either a model or --list, not both")
        rows = _zoo_rows(cache_dir)
        if json_out:
            print_json({"models": rows})
            return
        orgs = sorted({r["repo_id"].split("/")[0] for r in rows})
        table = Table(title="sdnet model zoo (official accuracies, top-1 %)",
                      caption=f"Hub repos: {', '.join(o + '/<name>' for o in orgs)}; --json for repo, revision, sha256")
        for col in ("name", "accuracy", "published", "size", "cached"):
            table.add_column(col, justify="right" if col in ("accuracy", "size") else "left", no_wrap=col == "name")
        for r in rows:
            table.add_row(r["name"], f"{r['accuracy']:.2f}", "yes" if r["published"] else "not yet",
                          _size(r["size"], r["size_estimate"]),
                          "–" if r["cached"] is None else ("yes" if r["cached"] else "no"))
        console.print(table)
        return
    if not model:
        raise UsageError("name a model: a zoo name (sdnet pull-weights --list) or ORG/NAME[@REVISION]")
    from ..hub.puller import pull_weights

    result = pull_weights(model, cache_dir=cache_dir, revision=revision, progress=True)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"{result.name} @ {result.revision[:12]}: model.safetensors sha256 {result.sha256}", soft_wrap=True)
    print(result.path)

"""`sdnet visualize` (not built yet)."""

from __future__ import annotations

import typer

from .app import app
from .common import not_built


@app.command("visualize", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def visualize_command(ctx: typer.Context) -> None:
    """(not built yet)"""
    not_built("visualize")

"""`sdnet train` (not built yet)."""

from __future__ import annotations

import typer

from .app import app
from .common import not_built


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_command(ctx: typer.Context) -> None:
    """(not built yet)"""
    not_built("train")

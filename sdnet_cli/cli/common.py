"""Shared CLI plumbing: the stderr console, JSON output, and turning user errors into exit code 2."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False)

from ..errors import EXIT_FAILURE, EXIT_USAGE, UsageError  # noqa: F401 - re-exported for the commands

EXIT_BAD_INPUT = EXIT_USAGE


def print_json(obj: Any) -> None:
    """One machine-readable JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    """One red line on stderr."""
    text = str(message).strip()
    first = text.splitlines()[0] if text else "error"
    console.print(f"[bold red]error:[/] {escape(first)}", soft_wrap=True)


def not_built(command: str) -> None:
    """The one line an unbuilt command prints before exiting with 1."""
    error_line(f"'sdnet {command}' is not built yet in this version")
    raise SystemExit(EXIT_FAILURE)

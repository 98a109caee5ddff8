"""Shared CLI plumbing: the stderr console, JSON output, and turning user errors into exit code 2.

The console reads no markup: a path, a model name or a message is printed as it is (``r[/]x`` or
``sdnet[attacks]`` included). Styled lines are built from our own templates with :func:`styled`, every
user-supplied value in them passed through :func:`~rich.markup.escape`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)  # paths are never broken across lines

from ..errors import EXIT_USAGE, UsageError  # noqa: F401 - re-exported for the commands


def print_json(obj: Any) -> None:
    """One machine-readable JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def styled(template: str) -> Text:
    """Our own markup template as rich ``Text`` (user values inside must be :func:`escape`-d)."""
    return Text.from_markup(template)


_errors: list[str] = []  # the lines error_line printed during this command (what --json reports on failure)


def reset_errors() -> None:
    """Forget the error lines of an earlier command (``main`` calls it first)."""
    _errors.clear()


def last_error() -> str | None:
    """The last line :func:`error_line` printed during this command, if any."""
    return _errors[-1] if _errors else None


def error_line(message: str) -> None:
    """One red line on stderr."""
    text = str(message).strip()
    first = text.splitlines()[0] if text else "error"
    _errors.append(first)
    console.print(styled(f"[bold red]error:[/] {escape(first)}"), soft_wrap=True)

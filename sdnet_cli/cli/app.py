"""The ``sdnet`` Typer app: one thin module per subcommand registers itself here."""

from __future__ import annotations

import sys

import typer

from ..malloc import keep_freed_memory
from .common import EXIT_BAD_INPUT, EXIT_FAILURE, error_line

app = typer.Typer(
    name="sdnet",
    help="Sparse convolutional models (SDNet) for PyTorch: train, evaluate, test robustness, visualize, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _before_every_command() -> None:
    # CPU steps reuse freed activation memory instead of page-faulting it in again (see sdnet_cli.malloc).
    keep_freed_memory()


# Subcommand modules; each defines its command on ``app`` (import order = help order).
from . import train_cmd, eval_cmd, robust_cmd, visualize_cmd, export_cmd, pull_weights_cmd, models_cmd, bench_cmd  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one red line and exit code 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        error_line(str(e))
        sys.exit(EXIT_BAD_INPUT)
    except Exception as e:  # noqa: BLE001 - a failure while running: one line, exit 1
        error_line(f"{type(e).__name__}: {e}")
        if "--debug" in sys.argv or __import__("os").environ.get("SDNET_DEBUG"):
            raise
        sys.exit(EXIT_FAILURE)

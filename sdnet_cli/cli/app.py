"""The ``sdnet`` Typer app: one thin module per subcommand registers itself here."""

from __future__ import annotations

import os
import sys

import typer
from typer._click import exceptions as click_errors  # the click typer parses with (vendored)

from ..errors import EXIT_FAILURE, EXIT_USAGE, UsageError
from .common import error_line

app = typer.Typer(
    name="sdnet",
    help="Sparse convolutional models (SDNet) for PyTorch: train, evaluate, test robustness, visualize, export. "
         "Add --debug (or set SDNET_DEBUG=1) to see the traceback of a failure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)



def _register() -> None:
    """Register the subcommands explicitly (help order); the command modules never import this one."""
    from . import bench_cmd, eval_cmd, export_cmd, models_cmd, pull_weights_cmd, robust_cmd, train_cmd, visualize_cmd

    for name, fn in (("train", train_cmd.train_command), ("eval", eval_cmd.eval_command),
                     ("robust", robust_cmd.robust_command), ("visualize", visualize_cmd.visualize_command),
                     ("export", export_cmd.export_command), ("pull-weights", pull_weights_cmd.pull_weights_command),
                     ("models", models_cmd.models_command), ("bench", bench_cmd.bench_command)):
        app.command(name)(fn)


_register()


def _debug(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SDNET_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Console entry point. A :class:`~sdnet_cli.errors.UsageError` (the user's mistake) is one red line and
    exit code 2; any other exception is a failure: one line, exit code 1, and the traceback with ``--debug``
    (or ``SDNET_DEBUG=1``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(args)
    args = [a for a in args if a != "--debug"]
    try:
        code = app(args=args, standalone_mode=False)  # click's own usage errors come here, printed as one line
    except SystemExit:
        raise
    except click_errors.NoArgsIsHelpError as e:  # plain `sdnet`: the help (typer's rich help is printed already)
        if e.format_message().strip():
            print(e.format_message())
        sys.exit(EXIT_USAGE)
    except click_errors.UsageError as e:  # a flag that does not parse, an unknown option or command
        where = f"sdnet {e.ctx.info_name} --help" if e.ctx is not None and e.ctx.parent is not None else "sdnet --help"
        error_line(f"{e.format_message()} (see '{where}')")
        sys.exit(EXIT_USAGE)
    except typer.Abort:
        error_line("aborted")
        sys.exit(EXIT_FAILURE)
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)
    except UsageError as e:
        error_line(str(e))
        if debug:
            raise
        sys.exit(EXIT_USAGE)
    except Exception as e:  # noqa: BLE001 - a failure while running: one line, exit 1
        if debug:
            raise
        error_line(f"{type(e).__name__}: {e} (rerun with --debug or SDNET_DEBUG=1 for the traceback)")
        sys.exit(EXIT_FAILURE)
    if isinstance(code, int) and code:  # e.g. Ctrl-C inside typer (130)
        sys.exit(code)

"""``sdnet``: the console entry point (:func:`main`) around the Typer app of :mod:`sdnet_cli.cli.commands`.

This module imports nothing heavy: the app, the commands and torch are imported inside :func:`main`, so a
Ctrl-C at any moment, start-up included, is one line and exit code 130. ``app`` is still importable from here.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from types import FrameType

EXIT_INTERRUPTED = 130


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer app (for CliRunner and the like), built on first use
        from .commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _debug(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SDNET_DEBUG", "") not in ("", "0")


class _Reported(SystemExit):
    """An exit whose line (and ``--json`` object) is printed already."""


def _fail(code: int, message: str, json_out: bool) -> NoReturn:
    """One red line on stderr (and, with ``--json``, ``{"error", "exit_code"}`` on stdout), then exit."""
    from .common import error_line

    error_line(message)
    if json_out:
        _json_error(message, code)
    raise _Reported(code)


def _json_error(message: str, code: int) -> None:
    import json

    text = str(message).strip()
    sys.stdout.write(json.dumps({"error": text.splitlines()[0] if text else "error", "exit_code": code}) + "\n")
    sys.stdout.flush()


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _sigint_handler(json_out: bool) -> Any:
    """Ctrl-C: ``KeyboardInterrupt`` as usual (the command cleans up, one line, 130), except in the middle of an
    import (start-up, or a module a command loads late): a half-imported torch or numpy can swallow the
    interrupt or fail on later imports, so the process says so in one line and exits 130 at once (nothing is
    being written then that a kill would not leave whole)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if not _importing(frame):
            raise KeyboardInterrupt
        os.write(2, b"error: interrupted\n")
        if json_out:
            os.write(1, b'{"error": "interrupted", "exit_code": 130}\n')
        os._exit(EXIT_INTERRUPTED)

    return handle


def main(argv: list[str] | None = None) -> None:
    """Console entry point. A :class:`~sdnet_cli.errors.UsageError` (the user's mistake) is one red line and
    exit code 2; any other exception is a failure: one line, exit code 1, and the traceback with ``--debug``
    (or ``SDNET_DEBUG=1``); Ctrl-C is one line and exit code 130 at any moment. With ``--json`` a failure also
    prints ``{"error": ..., "exit_code": ...}`` on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    json_out = "--json" in args
    try:  # only the main thread may set a handler (an in-process caller's own handler is restored after)
        previous = signal.signal(signal.SIGINT, _sigint_handler(json_out))
    except ValueError:
        previous = None
    try:
        _main(args, json_out)
    except KeyboardInterrupt:  # anywhere outside the command itself
        _fail(EXIT_INTERRUPTED, "interrupted", json_out)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main(args: list[str], json_out: bool) -> None:
    from .common import last_error, reset_errors

    reset_errors()
    debug = _debug(args)
    args = [a for a in args if a != "--debug"]
    try:
        code = _invoke(args, debug, json_out)
    except _Reported:
        raise
    except SystemExit as e:  # a command that printed its own line (NaN loss, Ctrl-C of a training)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if json_out and code:
            _json_error(last_error() or ("interrupted" if code == EXIT_INTERRUPTED else f"exit code {code}"), code)
        raise
    if code == EXIT_INTERRUPTED:  # Ctrl-C inside the command (typer turns it into exit code 130)
        _fail(EXIT_INTERRUPTED, "interrupted", json_out)
    if isinstance(code, int) and code:
        _fail(code, last_error() or f"exit code {code}", json_out)


def _invoke(args: list[str], debug: bool, json_out: bool) -> Any:
    """Run the app; map every exception to its one line and exit code."""
    from ..errors import EXIT_FAILURE, EXIT_USAGE, UsageError
    import typer
    from typer._click import exceptions as click_errors  # the click typer parses with (vendored)

    from .commands import app

    try:
        return app(args=args, standalone_mode=False)  # click's own usage errors come here, printed as one line
    except SystemExit:
        raise
    except click_errors.NoArgsIsHelpError as e:  # plain `sdnet`: the help (typer's rich help is printed already)
        if e.format_message().strip():
            print(e.format_message())
        sys.exit(EXIT_USAGE)
    except click_errors.UsageError as e:  # a flag that does not parse, an unknown option or command
        where = f"sdnet {e.ctx.info_name} --help" if e.ctx is not None and e.ctx.parent is not None else "sdnet --help"
        _fail(EXIT_USAGE, f"{e.format_message()} (see '{where}')", json_out)
    except typer.Abort:
        _fail(EXIT_FAILURE, "aborted", json_out)
    except KeyboardInterrupt:
        _fail(EXIT_INTERRUPTED, "interrupted", json_out)
    except UsageError as e:
        if debug:
            from .common import error_line

            error_line(str(e))
            raise
        _fail(EXIT_USAGE, str(e), json_out)
    except Exception as e:  # noqa: BLE001 - a failure while running: one line, exit 1
        if debug:
            raise
        _fail(EXIT_FAILURE, f"{type(e).__name__}: {e} (rerun with --debug or SDNET_DEBUG=1 for the traceback)", json_out)

"""Run the CLI in-process, as a user would from a shell."""

from __future__ import annotations


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``sdnet ARGS`` in-process through ``main`` (the real error handling); returns ``(code, stdout, stderr)``."""
    from sdnet_cli.cli.app import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err

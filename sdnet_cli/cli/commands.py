"""The ``sdnet`` Typer app: one thin module per subcommand registers itself here (``app.main`` runs it)."""

from __future__ import annotations

import inspect
from typing import Callable

import typer
from rich.markup import escape

app = typer.Typer(
    name="sdnet",
    help="Sparse convolutional models (SDNet) for PyTorch: train, evaluate, test robustness, visualize, export. "
         "Add --debug (or set SDNET_DEBUG=1) to see the traceback of a failure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)



def _help_as_written(fn: Callable[..., None]) -> str:
    """The command's help with every text escaped for rich, which typer reads help as: ``pip install
    "sdnet[attacks]"`` prints as written instead of losing ``[attacks]`` as a markup tag."""
    for param in inspect.signature(fn).parameters.values():
        info = param.default
        if isinstance(info, typer.models.ParameterInfo) and isinstance(info.help, str):
            info.help = escape(info.help)
    return escape(inspect.getdoc(fn) or "")


def _register() -> None:
    """Register the subcommands explicitly (help order); the command modules never import this one."""
    from . import bench_cmd, eval_cmd, export_cmd, models_cmd, pull_weights_cmd, robust_cmd, train_cmd, visualize_cmd

    for name, fn in (("train", train_cmd.train_command), ("eval", eval_cmd.eval_command),
                     ("robust", robust_cmd.robust_command), ("visualize", visualize_cmd.visualize_command),
                     ("export", export_cmd.export_command), ("pull-weights", pull_weights_cmd.pull_weights_command),
                     ("models", models_cmd.models_command), ("bench", bench_cmd.bench_command)):
        app.command(name, help=_help_as_written(fn))(fn)


_register()

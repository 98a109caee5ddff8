"""The model argument of ``eval``, ``robust``, ``visualize`` and ``export`` when none is typed: the newest
finished run under ``./runs`` (:func:`sdnet_cli.engine.rundir.default_run`), said on stderr."""

from __future__ import annotations

from ..engine.rundir import default_run
from .common import console


def model_or_newest_run(model: str | None) -> str:
    """``model`` when given; else the newest finished run under ``runs/`` (one stderr line names it), or a
    :class:`~sdnet_cli.errors.UsageError` saying to train first or name a model."""
    if model:
        return model
    run = default_run()
    console.print(f"no model given: using the newest finished run {run}", soft_wrap=True)  # printed as written
    return str(run)

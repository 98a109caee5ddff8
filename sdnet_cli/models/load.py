"""Local model sources: a model directory, or a run directory (``sdnet train`` output: its ``best/``, else ``last/``).

Names that are not local paths (zoo names, Hub repos) are resolved by :mod:`sdnet_cli.hub.resolve`,
which builds on this module; nothing here reaches the network.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingFileError, UsageError
from .files import CONFIG_NAME


def local_model_dir(src: str | Path) -> Path | None:
    """The model directory the local path ``src`` names, or ``None`` when nothing exists at ``src``.

    A folder with ``config.json`` is a model directory; a run directory resolves to ``best/``, else ``last/``.
    A folder without a model, or a file, is a ``UsageError`` saying what was expected.
    """
    path = Path(src)
    if path.is_dir():
        if (path / CONFIG_NAME).is_file():
            return path
        for sub in ("best", "last"):
            if (path / sub / CONFIG_NAME).is_file():
                return path / sub
        raise MissingFileError(f"{path} holds no model: expected {CONFIG_NAME} in it or in best/ or last/")
    if path.exists():
        raise UsageError(f"{path} is a file; pass a model directory (official .pth.tar files go through 'sdnet export')")
    return None

"""``--stem-type`` and its deprecated spelling ``--stem`` (a hidden option of ``sdnet bench`` and ``sdnet export``).

``--stem`` still works: it warns once per process with a ``FutureWarning``, printed by Python's warning
machinery as one line on stderr (no source line: the location is the command, not a file).
"""

from __future__ import annotations

import warnings
from typing import Optional

import typer

from ..errors import UsageError
from ..layers.deprecations import first_use

OLD_FLAG_HELP = "Deprecated spelling of --stem-type."


def old_stem_option() -> Optional[str]:
    """The hidden ``--stem`` option (a ``typer.Option`` default)."""
    return typer.Option(None, "--stem", hidden=True, help=OLD_FLAG_HELP)


def stem_type_flag(stem_type: Optional[str], stem: Optional[str], command: str) -> Optional[str]:
    """The value of ``--stem-type``, else of ``--stem`` (``None``: neither given); ``--stem`` warns once per
    process, and both with different values is a :class:`UsageError`."""
    if stem is None:
        return stem_type
    if first_use("--stem"):
        warnings.warn_explicit("--stem is deprecated, use --stem-type", FutureWarning, filename=f"sdnet {command}",
                               lineno=0)
    if stem_type is not None and stem_type != stem:
        raise UsageError(f"--stem {stem} and --stem-type {stem_type} disagree: --stem is the old spelling of "
                         "--stem-type; give --stem-type only")
    return stem

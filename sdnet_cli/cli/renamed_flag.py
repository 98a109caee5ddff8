"""Flags renamed to the project's spelling (λ is ``lambda`` on the command line, the stem kind ``--stem-type``),
the old spelling kept as a hidden option that warns once per process: a ``FutureWarning`` printed by Python's
warning machinery as one line on stderr, located at the command (``sdnet robust``), not at a source file.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, TypeVar

import typer

from ..errors import UsageError
from ..deprecations import first_use

T = TypeVar("T")


def old_flag_option(old: str, new: str) -> Any:
    """The hidden option ``old`` (a ``typer.Option`` default of ``None``), the deprecated spelling of ``new``."""
    return typer.Option(None, old, hidden=True, help=f"Deprecated spelling of {new}.")


def renamed_flag(new_value: Optional[T], old_value: Optional[T], new: str, old: str, command: str,
                 default: Optional[T] = None) -> Optional[T]:
    """The value of flag ``new``, else of its old spelling ``old``, else ``default``; ``old`` warns once per
    process, and both given with different values is a :class:`UsageError`."""
    if old_value is None:
        return default if new_value is None else new_value
    if first_use(old):
        warnings.warn_explicit(f"{old} is deprecated, use {new}", FutureWarning, filename=f"sdnet {command}", lineno=0)
    if new_value is not None and new_value != old_value:
        raise UsageError(f"{old} {old_value} and {new} {new_value} disagree: {old} is the old spelling of {new}; "
                         f"give {new} only")
    return old_value

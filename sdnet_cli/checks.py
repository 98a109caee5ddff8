"""Value checks shared by every options dataclass: one wording for "must be an integer >= N" and friends."""

from __future__ import annotations

import math
from typing import Any

from .errors import UsageError


def is_int(v: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def require_int(name: str, value: Any, least: int) -> None:
    """:class:`UsageError` unless ``value`` is an integer ≥ ``least``."""
    if not is_int(value) or value < least:
        raise UsageError(f"{name} must be an integer >= {least}, got {value!r}")


def require_finite(name: str, value: Any, least: float = 0.0, strict: bool = False) -> None:
    """:class:`UsageError` unless ``value`` is a finite number ≥ ``least`` (> with ``strict``)."""
    ok = is_real(value) and math.isfinite(value) and (value > least if strict else value >= least)
    if not ok:
        raise UsageError(f"{name} must be a finite number {'>' if strict else '>='} {least:g}, got {value!r}")

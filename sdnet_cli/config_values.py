"""A config value checked against its type annotation: ``coerce(key, tp, value)``.

``tp`` is one of the annotations the config schema uses (``int``, ``float``, ``bool``, ``str``,
``list[T]`` and ``X | None`` unions of them). Values from YAML are checked as they are; strings from
``--set`` are parsed first (``"3"`` → 3, ``"true"`` → True, ``"[1, 2]"`` or ``"1,2"`` → [1, 2]).
A value that does not fit is a :class:`UsageError` naming the key.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml

from .errors import UsageError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce_number(key: str, value: Any, tp: type, accepted: tuple[type, ...], what: str) -> Any:
    """``value`` as ``tp`` when it is one of ``accepted`` (never a bool) or a string that parses; else a ValueError."""
    if not isinstance(value, bool):
        if isinstance(value, accepted):
            return tp(value)
        if isinstance(value, str):
            try:
                return tp(value.strip())
            except ValueError:
                pass
    raise UsageError(f"{key}: expected {what}, got {value!r}")


def _yaml_list(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UsageError(f"{key}: expected a list like [1, 2] or 1,2, got {text!r}") from None


def coerce(key: str, tp: Any, value: Any) -> Any:
    """``value`` checked (and, for strings from ``--set``, parsed) against annotation ``tp``; else ``ValueError``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(key, a, value)
            except UsageError as e:
                errors.append(str(e))
        raise UsageError(errors[0] if errors else f"{key}: cannot be null")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, str):
            s = value.strip()
            value = _yaml_list(key, s) if s.startswith("[") else [v for v in s.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{key}: expected a list of {_type_name(inner)}, got {value!r}")
        return [coerce(f"{key}[{i}]", inner, v) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise UsageError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        return _coerce_number(key, value, int, (int,), "an integer")
    if tp is float:
        return _coerce_number(key, value, float, (int, float), "a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UsageError(f"{key}: expected a string, got {value!r}")
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # internal: schema uses only the types above

"""Old public names, kept working with a warning (timm's ``register_model_deprecations`` way: the old name calls
the new one and says so): functions, module attributes, dataclass fields, ``config.json`` keys and CLI flags.

Each old name warns once per process, on its first use (a ``DeprecationWarning`` for programmers, a
``FutureWarning`` for what whoever runs sdnet types or keeps in files). :data:`DEPRECATED` lists the sparse
coding API's (old → new); module attributes (:func:`deprecated_attribute`) and dataclass fields
(:func:`renamed_fields`) name their replacement where they are declared.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, Callable

DEPRECATED: dict[str, str] = {
    "update_step_size": "converge_step_size",
    "update_step_sizes": "converge_step_sizes",
    "StepSizeKeeper.refresh_all": "StepSizeKeeper.converge_step_sizes",
}
_warned: set[str] = set()


def first_use(old: str) -> bool:
    """``True`` the first time this process asks about the deprecated name ``old``, then ``False``."""
    if old in _warned:
        return False
    _warned.add(old)
    return True


def warn_deprecated(old: str, new: str | None = None, stacklevel: int = 3,
                    category: type[Warning] = DeprecationWarning) -> None:
    """One ``category`` warning naming ``old``'s replacement ``new`` (default ``DEPRECATED[old]``), the first
    time ``old`` is used; ``stacklevel`` as for :func:`warnings.warn`, counted from the caller of this function."""
    if first_use(old):
        warnings.warn(f"{old} is deprecated, use {new or DEPRECATED[old]}", category, stacklevel=stacklevel)


def deprecated_attribute(module: str, table: dict[str, tuple[str, Any]], name: str) -> Any:
    """A module ``__getattr__`` body: the object of old name ``name`` in ``table`` (old → (new name, object)),
    with one :func:`warn_deprecated` naming ``module.new``; unknown names raise ``AttributeError``."""
    if name not in table:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, obj = table[name]
    warn_deprecated(f"{module}.{name}", f"{module}.{new}", stacklevel=4)
    return obj


def deprecated_alias(new: Callable[..., Any], old: str) -> Callable[..., Any]:
    """A function (or method) named ``old`` that warns once (:func:`warn_deprecated`) and calls ``new``."""

    @functools.wraps(new)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warn_deprecated(old)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old.rsplit(".", 1)[-1]
    alias.__doc__ = f"Deprecated name of :func:`{DEPRECATED[old]}` (warns once)."
    return alias


def renamed_fields(renames: dict[str, str]) -> Callable[[type], type]:
    """Class decorator over a dataclass: ``cls(old=...)`` fills field ``renames[old]``, ``obj.old`` reads
    ``obj.<new>`` and ``obj.old = v`` sets it on a mutable class (also for renamed properties), each old name
    warning once (:func:`warn_deprecated`); giving both spellings in one call is a ``TypeError``."""

    def decorate(cls: type) -> type:
        init, fields = cls.__init__, {f.name for f in dataclasses.fields(cls)}

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            for old, new in renames.items():
                if old in kwargs and new in fields:
                    if new in kwargs:
                        raise TypeError(f"{cls.__name__}() got both {old}= and {new}=; give {new}= only")
                    warn_deprecated(f"{cls.__name__}({old}=...)", f"{cls.__name__}({new}=...)")
                    kwargs[new] = kwargs.pop(old)
            init(self, *args, **kwargs)

        cls.__init__ = __init__  # type: ignore[misc]
        for old, new in renames.items():
            setattr(cls, old, _old_attribute(cls.__name__, old, new))
        return cls

    return decorate


def _old_attribute(owner: str, old: str, new: str) -> property:
    """A property ``old`` that reads and (on a mutable class) writes ``new``, warning once."""

    def get(self: Any) -> Any:
        warn_deprecated(f"{owner}.{old}", f"{owner}.{new}")
        return getattr(self, new)

    def set_(self: Any, value: Any) -> None:  # a frozen dataclass refuses in its own __setattr__ first
        warn_deprecated(f"{owner}.{old}", f"{owner}.{new}")
        setattr(self, new, value)

    return property(get, set_, doc=f"Deprecated name of ``{new}`` (warns once).")

"""``stem_type`` (timm's name): the kind of a model's stem, ``cifar`` or ``imagenet``.

``cifar``: a 3×3 stride-1 stem convolution (total stride 8); ``imagenet``: a 7×7 stride-2 stem convolution and
a stride-2 pool (total stride 32). The word ``stem`` alone names the stem convolution (``convert="stem"``).

Older sdnet spelled ``stem_type`` as ``stem``: a keyword of ``create_model``/``ResNet``, a ``config.json`` key,
a CLI flag (:mod:`sdnet_cli.cli.renamed_flag`), a field of ``ModelConfig``/``BenchOptions``/``ExportOptions``. Those
spellings still work and each warns once per process (:mod:`sdnet_cli.deprecations`): keywords and fields with a
``DeprecationWarning`` (for programmers), the ``config.json`` key and the flag with a ``FutureWarning`` (for
whoever runs sdnet). Given together with the new spelling and a different value, the keyword, key or flag is a
:class:`~sdnet_cli.errors.UsageError` (a field: ``TypeError``, as for every renamed field).
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import UsageError
from ..deprecations import first_use, warn_deprecated

STEM_TYPES = ("cifar", "imagenet")
OLD_NAME = "stem"
OLD_KEYWORD = "the keyword stem="
OLD_FIELD = {OLD_NAME: "stem_type"}
"""For :func:`~sdnet_cli.deprecations.renamed_fields` over option/config classes with a ``stem_type`` field."""
CONFIG_KEY_WARNING = 'config.json key "stem" is deprecated, use "stem_type"'


def check_stem_type(value: object, label: str = "stem_type") -> None:
    """:class:`UsageError` unless ``value`` is one of :data:`STEM_TYPES` (``label``: the option as the user set it)."""
    if value not in STEM_TYPES:
        raise UsageError(f"{label} must be one of {', '.join(STEM_TYPES)}, got {value!r}")


def _renamed(mapping: dict[str, Any], what: str) -> dict[str, Any]:
    """``mapping`` with ``stem`` moved to ``stem_type``; a different ``stem_type`` beside it is refused."""
    out = dict(mapping)
    old = out.pop(OLD_NAME)
    if "stem_type" in out and out["stem_type"] != old:
        raise UsageError(f"{what} has both stem ({old!r}, the old name) and stem_type ({out['stem_type']!r}) "
                         "with different values; give stem_type only")
    out["stem_type"] = old
    return out


def stem_type_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the deprecated keyword ``stem=`` renamed ``stem_type=`` (one ``DeprecationWarning`` per
    process, pointing at the line that called the caller); ``kwargs`` itself when it has no ``stem``."""
    if OLD_NAME not in kwargs:
        return kwargs
    warn_deprecated(OLD_KEYWORD, "stem_type=", stacklevel=4)
    return _renamed(kwargs, "the call")


def stem_type_arg(stem_type: str, stem: str | None, default: str = "cifar") -> str:
    """The ``stem_type`` of a signature with ``stem_type`` (default ``default``) and the deprecated ``stem``
    (``None``: not given; else one ``DeprecationWarning`` per process at the line that called the caller)."""
    if stem is None:
        return stem_type
    warn_deprecated(OLD_KEYWORD, "stem_type=", stacklevel=4)
    given = {} if stem_type == default else {"stem_type": stem_type}
    return _renamed({OLD_NAME: stem, **given}, "the call")["stem_type"]


def stem_type_field(obj: dict[str, Any], source: str) -> dict[str, Any]:
    """A parsed ``config.json`` object with the old key ``"stem"`` renamed ``"stem_type"`` (one ``FutureWarning``
    per process, located at the file ``source``); ``obj`` itself when it has no ``"stem"``."""
    if OLD_NAME not in obj:
        return obj
    out = _renamed(obj, "it")
    if first_use(CONFIG_KEY_WARNING):
        warnings.warn_explicit(CONFIG_KEY_WARNING, FutureWarning, filename=source, lineno=0)
    return out

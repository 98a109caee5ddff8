"""Reading pickle-format dataset files without running code: a restricted unpickler.

A pickle file can name any importable callable and have it called while it is read, so an untrusted
``pickle.load`` runs whatever the file says. :func:`load_pickle` reads with an unpickler whose
``find_class`` resolves only what the distributed CIFAR-10/100 batches need — NumPy's array
reconstruction (``numpy.core.multiarray._reconstruct`` as the Python 2 files name it, ``numpy._core…``
as NumPy 2 writes it, ``_frombuffer`` for protocol 5), ``numpy.ndarray``, ``numpy.dtype`` — plus
``_codecs.encode`` for Latin-1 only (how Python 3 writes ``bytes`` at protocol 2) and the built-in
``set``/``frozenset``/``bytearray``. Dicts, lists, tuples, strings, bytes and numbers need no lookup. Any
other name (``os.system``, ``builtins.eval``, …) and any persistent id are refused before anything runs;
the file is reported in one line as a :class:`~sdnet_cli.errors.UsageError` (exit code 2).

``encoding="latin1"`` is used like torchvision, so the Python 2 ``str`` data of the official files reads back
as NumPy's raw bytes.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import UsageError

try:  # NumPy 2
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to what pickle protocol 2 writes for ``bytes``: ``encode(str, 'latin1')``."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed (only latin1)")
    return text.encode("latin1", errors)


ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
}
"""``(module, name)`` a file may name → what it gets. Nothing else is ever imported or called."""


class RefusedPickle(pickle.UnpicklingError):
    """The file names a callable outside :data:`ALLOWED` (it was not called)."""


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only :data:`ALLOWED` names and no persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle(f"persistent id {str(pid)[:40]!r}")


# what reading a damaged (not malicious) file raises from inside the unpickler and NumPy's __setstate__
_DAMAGE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
           UnicodeDecodeError, OverflowError, RecursionError)


def loads_pickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (``encoding='latin1'``); ``source`` names it in errors.

    Raises :class:`~sdnet_cli.errors.UsageError` for a refused name ("refusing to unpickle …") or damage.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except RefusedPickle as e:
        raise UsageError(f"{source}: refusing to unpickle {e}: a dataset file may hold only arrays, lists, "
                         "numbers and strings; it is not the official file (nothing in it was run), "
                         "replace it with a fresh copy") from None
    except _DAMAGE as e:
        raise UsageError(f"{source} could not be read ({type(e).__name__}: {str(e)[:200]}); "
                         "it is damaged, replace it with a fresh copy") from None


MAX_BYTES = 1 << 30
"""Largest file read (the biggest official batch, CIFAR-100 ``train``, is 155 MB)."""


def load_pickle(path: str | Path, max_bytes: int = MAX_BYTES) -> Any:
    """Read the pickle file ``path`` (at most ``max_bytes``) with :func:`loads_pickle` (no code in it runs)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UsageError(f"{path} is {size} bytes, more than any dataset file read this way ({max_bytes}); "
                             "it is not the official file, replace it with a fresh copy")
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{path} could not be read ({e.strerror or e})") from None
    return loads_pickle(data, str(path))

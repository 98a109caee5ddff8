"""The error kinds the command line tells apart.

A :class:`UsageError` (or a subclass) is a mistake in what the user asked for: a bad flag or value, a
missing or wrong-kind file, a malformed config or weights file. ``sdnet`` prints it as one red line and
exits with code 2. Every other exception is a failure while running (exit 1, traceback with ``--debug`` or
``SDNET_DEBUG=1``): a ``ValueError`` raised by a bug never reads as the user's fault.

``UsageError`` subclasses ``ValueError``, :class:`MissingFileError` ``FileNotFoundError`` and
:class:`UnknownArgumentError` ``TypeError``, so
Python callers that catch the built-in kinds keep working.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """A mistake in what the user asked for (exit code 2): say what is wrong and what to do."""


class MissingFileError(UsageError, FileNotFoundError):
    """A file or folder the user named (or that a command needs) does not exist (exit code 2)."""


class UnknownArgumentError(UsageError, TypeError):
    """A builder was given a keyword argument it does not take (exit code 2). Also a ``TypeError``: what Python
    raises for an unexpected keyword, and what timm's model contract expects from ``create_model``."""


class NetworkError(RuntimeError):
    """A download failed after its bounded retries: the message names what the server did (exit code 1)."""

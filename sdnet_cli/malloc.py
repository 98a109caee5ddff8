"""Keep freed CPU tensor memory in the process (glibc ``mallopt``), so CPU steps reuse the heap.

:func:`keep_freed_memory` sets glibc's mmap threshold to its maximum (32 MiB) and the trim threshold to 1 GiB,
as the ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` environment variables would: large freed
blocks (a network's activations) stay in the heap for the next step instead of going back to the kernel and
being faulted in again, zero-filled. The process keeps up to 1 GiB of freed heap instead of returning it.
It does nothing off Linux, without glibc's ``mallopt``, with ``SDNET_MALLOC_TUNING=0`` or when either glibc
variable is set; :func:`malloc_state` says whether it applied (what it saves: docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems
TRIM_THRESHOLD = 1024 * 1024 * 1024
OPT_OUT = "SDNET_MALLOC_TUNING"
GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_state = "default"


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds in this process; ``True`` when applied.

    ``False`` (nothing changed) off Linux, without glibc's ``mallopt``, with ``SDNET_MALLOC_TUNING=0`` or
    when the user set ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` themselves.
    """
    global _state
    if _state == "tuned":
        return True
    if os.environ.get(OPT_OUT, "1") == "0" or any(v in os.environ for v in GLIBC_VARIABLES):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return False
    _state = "tuned"
    return True


def malloc_state() -> str:
    """``'tuned'`` once :func:`keep_freed_memory` applied in this process, else ``'default'``."""
    return _state

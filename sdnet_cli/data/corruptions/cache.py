"""Generated CIFAR-C sets on disk: made in parallel over CPU workers, kept in the CIFAR-10-C file layout, reused.

A folder ``<root>/generated-c/<key>/`` holds ``<corruption>.npy`` uint8 ``(5·n, H, W, C)`` (rows
``(s−1)·n … s·n−1`` are severity ``s``, the ``n`` clean images in order) and ``labels.npy`` int64 ``(5·n,)``,
as the distributed CIFAR-10-C. ``key`` is a digest of the clean images and labels, the run's seed and
:data:`GENERATOR_VERSION`, so a set is only reused for the same inputs and the same generator. Block ``s``
of ``<name>.npy`` equals ``corrupt(images, name, s, seed_of(name, s))``: the cache changes no number.

Each (corruption, severity) is one job of a process pool; a worker writes its block into
``<name>.npy.part`` (memory-mapped) and the finished file becomes ``<name>.npy`` by one rename, so a kill
at any instant leaves complete files or none. One process generates in a folder at a time (an OS lock);
a second waits and then finds the files made.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import corrupt

GENERATOR_VERSION = "2"  # bump when any corruption's output changes (2: the make_cifar_c.py-equal generator)
SeedOf = Callable[[str, int], int]
_CLEAN = "clean.npy"


def cache_folder(root: str | Path, images: np.ndarray, labels: np.ndarray, seed: int) -> Path:
    """``root/generated-c/<key>``: ``key`` = sha256 of the generator version, seed, shapes and the pixels and labels."""
    h = hashlib.sha256(f"v{GENERATOR_VERSION} seed={int(seed)} {images.shape} {images.dtype}".encode())
    h.update(np.ascontiguousarray(images).data)
    h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return Path(root) / "generated-c" / h.hexdigest()[:20]


def _complete(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether ``path`` is a whole ``.npy`` of ``shape``/``dtype`` (a damaged one counts as missing)."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return False
    return arr.shape == shape and arr.dtype == dtype


def missing_names(folder: Path, names: list[str], n: int, image_shape: tuple[int, ...]) -> list[str]:
    """The corruptions of ``names`` without a complete ``<name>.npy`` in ``folder``."""
    shape = (5 * n,) + tuple(image_shape)
    return [c for c in names if not _complete(folder / f"{c}.npy", shape, np.dtype(np.uint8))]


def _save_atomic(path: Path, array: np.ndarray) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


def _job(folder: str, name: str, severity: int, seed: int) -> tuple[str, int]:
    """Worker: block ``severity`` of ``name`` into ``<name>.npy.part``."""
    clean = np.load(Path(folder) / _CLEAN, mmap_mode="r")
    out = np.lib.format.open_memmap(Path(folder) / f"{name}.npy.part", mode="r+")
    n = clean.shape[0]
    out[(severity - 1) * n:severity * n] = corrupt(np.asarray(clean), name, severity, seed)
    out.flush()
    del out
    return name, severity


def default_workers() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def generate(folder: str | Path, images: np.ndarray, labels: np.ndarray, names: list[str], seed_of: SeedOf,
             workers: int | None = None, on_done: Callable[[str, int], None] | None = None) -> Path:
    """Make every missing ``<name>.npy`` (all 5 severities) and ``labels.npy`` in ``folder``; returns it.

    ``images`` uint8 ``(n, H, W, C)``, ``labels`` ``(n,)``; ``seed_of(name, severity)`` the seed of each
    block; ``workers`` processes (default: the usable CPU cores; 1 runs in this process); ``on_done`` is
    called after each block. Raises ``OSError`` when ``folder`` cannot be written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        todo = missing_names(folder, names, n, images.shape[1:])
        if not _complete(folder / "labels.npy", (5 * n,), np.dtype(np.int64)):
            _save_atomic(folder / "labels.npy", np.tile(np.asarray(labels, dtype=np.int64), 5))
        if todo:
            _save_atomic(folder / _CLEAN, np.ascontiguousarray(images))
            for name in todo:
                np.lib.format.open_memmap(folder / f"{name}.npy.part", mode="w+", dtype=np.uint8,
                                          shape=(5 * n,) + images.shape[1:]).flush()
            _run_jobs(folder, [(c, s, seed_of(c, s)) for c in todo for s in range(1, 6)], workers, on_done)
            (folder / _CLEAN).unlink()
    return folder


def _run_jobs(folder: Path, jobs: list[tuple[str, int, int]], workers: int | None,
              on_done: Callable[[str, int], None] | None) -> None:
    left = {name: 5 for name, _, _ in jobs}

    def finished(name: str, severity: int) -> None:
        left[name] -= 1
        if not left[name]:
            os.replace(folder / f"{name}.npy.part", folder / f"{name}.npy")
        if on_done is not None:
            on_done(name, severity)

    images_done = sum(1 for _ in jobs) * np.load(folder / _CLEAN, mmap_mode="r").shape[0]
    if workers is None:  # starting worker processes costs more than it saves on small sets
        workers = default_workers() if images_done >= 20_000 else 1
    workers = min(workers, len(jobs))
    if workers <= 1:
        for job in jobs:
            finished(*_job(str(folder), *job))
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        with _one_thread_per_worker():
            futures = [pool.submit(_job, str(folder), *job) for job in jobs]
        for fut in as_completed(futures):
            finished(*fut.result())


@contextmanager
def _one_thread_per_worker() -> Iterator[None]:
    """While workers start: one BLAS/OpenMP thread each (the pool already uses every core); restored after."""
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_block(folder: str | Path, name: str, severity: int) -> np.ndarray:
    """Severity ``severity`` of a generated ``<name>.npy``: uint8 ``(n, H, W, C)`` (read from the memory map)."""
    data = np.load(Path(folder) / f"{name}.npy", mmap_mode="r")
    n = data.shape[0] // 5
    return np.array(data[(severity - 1) * n:severity * n])

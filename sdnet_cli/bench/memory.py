"""Peak memory of one workload: the CUDA allocator's peak on GPU, a child process's peak RSS on CPU.

Both report ``memory_mb`` = peak memory while building the model and running ``steps`` steps, minus
the memory in use just before (so the Python/torch runtime is left out; weights, gradients, optimizer
state, activations and workspaces are in), and ``total_mb`` = the peak itself.

On CPU each workload runs alone in a fresh ``python -m sdnet_cli.bench.memory`` process whose peak
RSS (``VmHWM``) is reset just before the build and read after the steps; glibc's dynamic mmap threshold is pinned
(``MALLOC_MMAP_THRESHOLD_``) so freed tensors go back to the system and RSS tracks live memory.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
from typing import Any, Callable

import torch

from .step import Workload, build_step, synchronize

MB = 1024.0 * 1024.0
MMAP_THRESHOLD = str(128 * 1024)


def current_rss_mb() -> float:
    """Resident set size of this process now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MB


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux ≥ 4.0: ``5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size since the last reset (``VmHWM``), else since start (``ru_maxrss``, KiB)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_here(w: Workload, steps: int) -> tuple[dict[str, Any], Callable[[], None], torch.nn.Module]:
    """Build ``w`` and run ``steps`` steps in this process; returns ``(numbers, step, model)``.

    CPU: RSS numbers (meaningful in a fresh process only); CUDA: allocator numbers.
    """
    gc.collect()
    device = torch.device(w.device) if w.device != "auto" else None
    cuda = (device is not None and device.type == "cuda") or (device is None and torch.cuda.is_available())
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / MB
    else:
        reset_peak_rss()  # so the import's transient peak does not count
        before = current_rss_mb()
    model, step, dev = build_step(w)
    for _ in range(steps):
        step()
    synchronize(dev)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / MB
        source = "cuda allocator (max_memory_allocated)"
    else:
        peak = peak_rss_mb()
        source = "child process peak RSS (VmHWM)"
    return {"memory_mb": peak - before, "total_mb": peak, "memory_source": source}, step, model


def measure_in_child(w: Workload, steps: int, timeout: float = 900.0) -> dict[str, Any]:
    """:func:`measure_here` in a fresh Python process (CPU memory); raises ``RuntimeError`` if it fails."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=MMAP_THRESHOLD)
    cmd = [sys.executable, "-m", "sdnet_cli.bench.memory", json.dumps({"workload": w.to_dict(), "steps": steps, "threads": torch.get_num_threads()})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory measurement of {w.model} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Child entry: one JSON argument ``{"workload": {...}, "steps": N}``, one JSON line on stdout."""
    args = json.loads((argv if argv is not None else sys.argv[1:])[0])
    if "threads" in args:
        torch.set_num_threads(int(args["threads"]))
    result = measure_here(Workload(**args["workload"]), int(args["steps"]))[0]
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

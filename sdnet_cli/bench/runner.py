"""``run_bench``: time several models side by side and measure their peak memory; returns a JSON-able dict."""

from __future__ import annotations

import os
import platform
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch

from ..malloc import malloc_state
from .memory import measure_here, measure_in_child
from .step import Workload, build_step, count_params, resolve_device
from .timing import interleaved_times, median
from ..errors import UsageError

DEFAULT_MODELS = ("resnet18", "sdnet18", "sdnet18_all")


def machine_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model with the number of threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads ({os.cpu_count()} CPUs visible)"


def parse_models(spec: str | Sequence[str]) -> list[str]:
    """``'resnet18,sdnet18'`` → ``['resnet18', 'sdnet18']``; an empty list is a ``ValueError``."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [n for n in names if n]
    if not names:
        raise UsageError("no model given; pass e.g. --models resnet18,sdnet18")
    return names


def paired_ratio(times: Sequence[float], base: Sequence[float]) -> float:
    """``median_r(times[r] / base[r])``: the per-round ratio cancels load that drifts between rounds."""
    return median([t / b for t, b in zip(times, base)])


def run_bench(
    models: Sequence[str],
    base: Workload,
    steps: int = 10,
    warmup: int = 2,
    inner: int | None = None,
    memory: bool = True,
    memory_steps: int = 2,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ``models`` on workload ``base`` (its ``model`` field is replaced per model).

    Timing: ``warmup`` untimed steps each, then ``steps`` interleaved rounds of ``inner`` steps
    (default 1 on CPU, 10 on CUDA); ``ms_per_step`` is the median. ``ratio`` is the median over rounds
    of a model's time divided by the first model's time in the same round (:func:`paired_ratio`);
    ``ratio_of_medians`` divides the medians. Memory (``memory_mb``, see :mod:`.memory`): on CUDA
    measured in this process while each model is built and warmed up in turn; on CPU in one child
    process per model.
    ``on_progress(message)`` is called as each phase starts.
    """
    say = on_progress or (lambda _m: None)
    device = resolve_device(base.device)
    workloads = [replace(base, model=m, device=str(device)) for m in models]
    for w in workloads:
        w.validate()
    if inner is None:
        inner = 10 if device.type == "cuda" else 1
    mem: list[dict[str, Any] | None] = []
    steps_fns, params = [], []
    for w in workloads:
        say(f"building {w.model}" + (" and measuring its memory" if memory else ""))
        if device.type == "cuda":
            numbers, step, model = measure_here(w, max(memory_steps, 1))
            mem.append(numbers if memory else None)
        else:
            model, step, _ = build_step(w)
            mem.append(measure_in_child(w, memory_steps) if memory else None)
        steps_fns.append(step)
        params.append(count_params(model))
    say(f"timing {len(workloads)} models: {warmup} warm-up + {steps} interleaved rounds")
    times = interleaved_times(steps_fns, steps, warmup, device, inner)
    rows = []
    for w, t, p, m in zip(workloads, times, params, mem):
        ms = 1000.0 * median(t)
        rows.append({"model": w.model, "params": p, "ms_per_step": ms, "img_per_s": w.batch_size / (ms / 1000.0),
                     "min_ms_per_step": 1000.0 * min(t),
                     "times_ms": [1000.0 * v for v in t], **(m or {})})
    for r in rows:
        r["ratio"] = paired_ratio(r["times_ms"], rows[0]["times_ms"])
        r["ratio_of_medians"] = r["ms_per_step"] / rows[0]["ms_per_step"]
        if "memory_mb" in r and rows[0].get("memory_mb"):
            r["memory_ratio"] = r["memory_mb"] / rows[0]["memory_mb"]
    settings = {**base.to_dict(), "device": str(device), "steps": steps, "warmup": warmup, "inner": inner,
                "malloc": malloc_state()}
    settings.pop("model")
    return {"machine": machine_name(device), "torch": torch.__version__, "settings": settings, "results": rows}

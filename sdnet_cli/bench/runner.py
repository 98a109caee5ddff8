"""``run(BenchOptions) -> BenchReport``: time several models side by side and measure their peak memory."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .. import malloc
from ..devices import resolve_device
from ..fsio import atomic_write_json
from .memory import measure_here, measure_in_child
from .options import BenchOptions
from .report import BenchReport, BenchRow
from .step import STEP_SIZE_EVERY, build_step, count_params, step_size_step
from .timing import interleaved_times, median

Progress = Callable[[str], None]


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


def paired_ratio(times: Sequence[float], base: Sequence[float]) -> float:
    """``median_r(times[r] / base[r])``: the per-round ratio cancels load that drifts between rounds."""
    return median([t / b for t, b in zip(times, base)])


def _memory_reuse(opts: BenchOptions, device: torch.device, say: Progress) -> None:
    """On CPU, keep freed tensor memory (glibc mallopt) unless turned off; says once what it did."""
    if device.type != "cpu":
        return
    if not opts.memory_reuse:
        say("CPU memory reuse: off (as asked)")
    elif malloc.keep_freed_memory():
        say("CPU memory reuse: on (glibc mallopt keeps freed tensor memory; memory_reuse=False turns it off)")
    else:
        say("CPU memory reuse: not applied (not glibc, SDNET_MALLOC_TUNING=0 or MALLOC_* variables set)")


def _build_all(opts: BenchOptions, device: torch.device, say: Progress) -> tuple[list, list, list, list]:
    """Per model: train/eval step, step-size step (or None), parameter count, memory numbers (or None)."""
    steps, size_steps, params, mem = [], [], [], []
    for w in opts.workloads:
        say(f"building {w.model}" + (" and measuring its memory" if opts.memory else ""))
        if device.type == "cuda":
            numbers, step, model = measure_here(w, opts.memory_steps)
            mem.append(numbers if opts.memory else None)
        else:
            model, step, _ = build_step(w)
            mem.append(measure_in_child(w, opts.memory_steps) if opts.memory else None)
        steps.append(step)
        size_steps.append(step_size_step(model) if w.mode == "train" and w.step_sizes else None)
        params.append(count_params(model))
    return steps, size_steps, params, mem


def run(opts: BenchOptions, on_progress: Progress | None = None) -> BenchReport:
    """Benchmark ``opts.models`` on one workload; ``on_progress(message)`` is called as each phase starts.

    Timing: ``warmup`` untimed steps each, then ``steps`` interleaved rounds of ``inner`` steps; the
    step-size tracking of each SDNet takes its own turn in every round (``step_size_ms``: one full turn of
    the keeper's schedule, divided by its period). Memory (see
    :mod:`.memory`): on CUDA in this process while each model is built and warmed up, on CPU in one child
    process per model.
    """
    say = on_progress or (lambda _m: None)
    device = resolve_device(opts.device)
    _memory_reuse(opts, device, say)
    inner = opts.inner if opts.inner is not None else (10 if device.type == "cuda" else 1)
    steps, size_steps, params, mem = _build_all(opts, device, say)
    extra = [s for s in size_steps if s is not None]
    say(f"timing {len(steps)} models: {opts.warmup} warm-up + {opts.steps} interleaved rounds")
    times = interleaved_times(steps + extra, opts.steps, opts.warmup, device, inner)
    step_times, extra_times = times[: len(steps)], iter(times[len(steps):])
    base = step_times[0]
    rows = []
    for name, t, p, m, s in zip(opts.models, step_times, params, mem, size_steps):
        ms = 1000.0 * median(t)
        st = [v / STEP_SIZE_EVERY for v in next(extra_times)] if s is not None else None  # per step
        rows.append(BenchRow(
            model=name, params=p, ms_per_step=ms, img_per_s=opts.batch_size / (ms / 1000.0),
            min_ms_per_step=1000.0 * min(t), times_ms=[1000.0 * v for v in t], ratio=paired_ratio(t, base),
            ratio_of_medians=ms / (1000.0 * median(base)),
            step_size_ms=None if st is None else 1000.0 * median(st),
            step_size_share=None if st is None else paired_ratio(st, t),
            **_memory_fields(m, mem[0])))
    report = BenchReport(machine=machine_name(device), torch=torch.__version__,
                         settings=_settings(opts, device, inner), results=rows)
    if opts.output is not None:
        atomic_write_json(Path(opts.output), report.to_dict())
    return report


def _memory_fields(m: dict[str, Any] | None, first: dict[str, Any] | None) -> dict[str, Any]:
    if m is None:
        return {}
    ratio = m["memory_mb"] / first["memory_mb"] if first and first.get("memory_mb") else None
    return {"memory_mb": m["memory_mb"], "total_mb": m["total_mb"], "memory_source": m["memory_source"],
            "memory_ratio": ratio}


def _settings(opts: BenchOptions, device: torch.device, inner: int) -> dict[str, Any]:
    keys = ("batch_size", "image_size", "mode", "amp", "channels_last", "compile", "num_classes", "stem_type", "seed",
            "steps", "warmup", "step_sizes", "memory_reuse", "recompute")
    return {**{k: getattr(opts, k) for k in keys}, "device": str(device), "inner": inner,
            "malloc": malloc.malloc_state()}

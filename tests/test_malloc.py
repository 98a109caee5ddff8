"""``keep_freed_memory``: after it, repeated CPU steps reuse freed tensor memory instead of page-faulting it in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from sdnet_cli.malloc import GLIBC_VARIABLES, OPT_OUT

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc mallopt only"
)

# Three fresh 16 MiB tensors per step, as a network's activations; prints the median minor page faults of
# 8 steps after 2 warm-up steps. It starts from glibc's initial 128 KiB mmap threshold, pinned (the default
# raises it on the fly, so whether a block comes back depends on the order of earlier frees; a network's
# eval step at batch 64 faults ~50,000 pages by default, see the README).
SCRIPT = """
import ctypes, json, resource, sys, torch
from sdnet_cli.malloc import M_MMAP_THRESHOLD, keep_freed_memory, malloc_state
ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 * 1024)
applied = keep_freed_memory() if sys.argv[1] == "1" else False
x = torch.ones(4 << 20)
def step():
    y = x * 2
    z = y + 1
    del y
    return z.relu().sum()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    step()
per_step = []
for _ in range(8):
    before = faults()
    step()
    per_step.append(faults() - before)
print(json.dumps({"applied": applied, "state": malloc_state(), "faults": sorted(per_step)[4]}))
"""
STEP_PAGES = 3 * (16 << 20) // 4096  # one step's three tensors, faulted in afresh


def run(tune: bool, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != OPT_OUT and k not in GLIBC_VARIABLES}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "1" if tune else "0"], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tuned_steps_do_not_page_fault() -> None:
    """Median page faults per step: every page of the step's tensors with blocks handed back, none once tuned."""
    handed_back, tuned = run(False), run(True)
    assert handed_back["state"] == "default" and tuned["applied"] and tuned["state"] == "tuned"
    assert handed_back["faults"] > 0.9 * STEP_PAGES, handed_back
    assert tuned["faults"] < 0.01 * STEP_PAGES, tuned


@pytest.mark.parametrize("env", [{"SDNET_MALLOC_TUNING": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_opt_out_and_user_settings_leave_the_allocator_alone(env: dict) -> None:
    out = run(True, **env)
    assert not out["applied"] and out["state"] == "default"
    assert out["faults"] > 0.9 * STEP_PAGES


# Importing sdnet_cli and running ``sdnet --help`` in a process, then the SCRIPT's step: the allocator and the
# thread count must be as a process that imported torch alone had them.
UNTOUCHED = """
import ctypes, json, resource, sys, torch
from sdnet_cli.malloc import M_MMAP_THRESHOLD
ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 * 1024)
threads = torch.get_num_threads()
import sdnet_cli
from sdnet_cli.cli.app import main
try:
    main(["--help"])
except SystemExit as e:
    assert e.code == 0, e.code
from sdnet_cli.malloc import malloc_state
x = torch.ones(4 << 20)
def step():
    y = x * 2
    z = y + 1
    del y
    return z.relu().sum()
for _ in range(2):
    step()
per_step = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    per_step.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"state": malloc_state(), "faults": sorted(per_step)[4], "threads": [threads, torch.get_num_threads()]}))
"""

# ``sdnet bench`` on CPU asks for memory reuse (and says so); ``memory_reuse=False`` leaves the allocator alone.
BENCH = """
import json, sys
from sdnet_cli.bench import BenchOptions, run
from sdnet_cli.malloc import malloc_state
said = []
run(BenchOptions(models=("resnet18",), batch_size=2, image_size=8, steps=1, warmup=0, memory=False, device="cpu",
                 memory_reuse=sys.argv[1] == "1"), on_progress=said.append)
print(json.dumps({"state": malloc_state(), "said": [m for m in said if m.startswith("CPU memory reuse")]}))
"""


def run_script(script: str, *args: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != OPT_OUT and k not in GLIBC_VARIABLES}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=clean,
                          timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_and_help_leave_allocator_and_threads_alone() -> None:
    out = run_script(UNTOUCHED)
    assert out["state"] == "default"
    assert out["faults"] > 0.9 * STEP_PAGES, out  # freed blocks still go back: mallopt was not called
    assert out["threads"][0] == out["threads"][1], out


@pytest.mark.parametrize("reuse", [True, False])
def test_bench_asks_for_memory_reuse_only_when_told(reuse: bool) -> None:
    out = run_script(BENCH, "1" if reuse else "0")
    assert out["state"] == ("tuned" if reuse else "default")
    assert len(out["said"]) == 1 and ("on" if reuse else "off") in out["said"][0], out

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

"""``keep_freed_memory``: after it, repeated CPU steps reuse freed tensor memory instead of page-faulting it in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc mallopt only"
)

# Three fresh 16 MiB tensors per step, as a network's activations; prints the minor page faults of 5 steps
# after 3 warm-up steps (the heap reaches its working size in the first two).
SCRIPT = """
import json, resource, sys, torch
from sdnet_cli.malloc import keep_freed_memory, malloc_state
applied = keep_freed_memory() if sys.argv[1] == "1" else False
x = torch.ones(4 << 20)
def step():
    y = x * 2
    z = y + 1
    del y
    return z.relu().sum()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "state": malloc_state(), "faults": faults}))
"""


def run(tune: bool, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("SDNET_MALLOC_TUNING", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "1" if tune else "0"], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tuned_steps_do_not_page_fault() -> None:
    default, tuned = run(False), run(True)
    assert default["state"] == "default" and tuned["applied"] and tuned["state"] == "tuned"
    pages = 5 * 3 * (16 << 20) // 4096  # every step's three tensors faulted in afresh
    assert default["faults"] > 0.5 * pages, default  # glibc's defaults hand the blocks back to the kernel
    assert tuned["faults"] < 0.02 * pages, tuned


@pytest.mark.parametrize("env", [{"SDNET_MALLOC_TUNING": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_opt_out_and_user_settings_leave_the_allocator_alone(env: dict) -> None:
    out = run(True, **env)
    assert not out["applied"] and out["state"] == "default"
    assert out["faults"] > 0.5 * 5 * 3 * (16 << 20) // 4096

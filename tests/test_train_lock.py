"""One process per run directory: an OS lock held for the whole run (outputs.OutputLock), never left stale."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import invoke

from sdnet_cli.engine.state import find_state
from sdnet_cli.outputs import OutputLock

ARGS = ["--batch-size", "16", "--set", "train.limit_batches=4", "--set", "train.threads=1",
        "--set", "train.tensorboard=false", "--set", "train.eval_batch_size=512"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sdnet_cli", "train", "--output", str(out), *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_until(cond, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_held_lock_refuses_the_run_and_names_the_holder(tmp_path):
    out = tmp_path / "run"
    with OutputLock(out):  # this process holds it
        r = invoke(["train", "--output", str(out), "--epochs", "1", *ARGS])
    assert r.exit_code == 2, r.output
    assert f"in use by process {os.getpid()}" in r.output and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


@pytest.mark.slow
def test_two_processes_on_one_output_exactly_one_runs(tmp_path):
    out = tmp_path / "run"
    a = start(out, "--epochs", "15")  # long enough to outlast b's start-up (a 3-epoch run could end first)
    wait_until(lambda: (out / "steps.jsonl").is_file(), a)  # a is training, holding the lock
    b = start(out, "--epochs", "3")
    _, err_b = b.communicate(timeout=300)
    busy = f"in use by process {a.pid}" in err_b
    assert busy or a.poll() is None, "the first run ended before the second one started; lengthen the first run"
    assert b.returncode == 2 and busy and "Traceback" not in err_b, err_b
    _, err_a = a.communicate(timeout=600)
    assert a.returncode == 0, err_a
    steps = [json.loads(line)["step"] for line in (out / "steps.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))  # every step once


@pytest.mark.slow
def test_a_killed_holder_does_not_block_the_next_run(tmp_path):
    out = tmp_path / "run"
    a = start(out, "--epochs", "2", "--set", "train.checkpoint_every=1")
    wait_until(lambda: (found := find_state(out / "state")) is not None and found[0]["loop"]["global_step"] >= 2, a)
    a.send_signal(signal.SIGKILL)
    a.wait()
    assert (tmp_path / ".run.lock").read_text().strip() == str(a.pid)  # the file stays; the kernel dropped the flock
    r = subprocess.run([sys.executable, "-m", "sdnet_cli", "train", "--output", str(out), "--resume"],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    steps = [json.loads(line)["step"] for line in (out / "steps.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))

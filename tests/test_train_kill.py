"""Real SIGKILLs at many moments of ``sdnet train --force`` over a finished run and of ``sdnet train`` with
``train.checkpoint_every=1``: after every kill the run directory holds a complete result — the old one or
the new one, never a mix — that loads with ``sdnet_cli.load_model`` and evaluates (computed here) to the
top-1 recorded in its config.json; ``state/`` holds one complete state; the next run leaves no temporaries.

Kill moments: ten, spread evenly over the duration of one uninterrupted run measured first (so they land in
start-up, training steps, evaluation and the checkpoint writes, whatever the machine's speed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

import sdnet_cli as sd
from sdnet_cli.data.datasets import build_dataset
from sdnet_cli.engine.state import find_state

RUN = ["--batch-size", "16", "--set", "train.limit_batches=3", "--set", "train.threads=1",
       "--set", "train.tensorboard=false", "--set", "train.eval_batch_size=512", "--seed", "5"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KILLS = 10


def cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sdnet_cli", "train", "--output", str(out), *RUN, *extra]


def timed_run(args: list[str]) -> float:
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return time.time() - t0


def kill_after(args: list[str], delay: float) -> None:
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()


@torch.no_grad()
def top1_of(model_dir: Path) -> float:
    """Top-1 % on the digits test split of the model that ``load_model`` gives for ``model_dir``."""
    cfg = json.loads(((model_dir / "best") if (model_dir / "best").is_dir() else model_dir).joinpath("config.json").read_text())
    model = sd.load_model(model_dir)
    ds = build_dataset("digits", "test", image_size=cfg["metrics"]["image_size"], in_chans=cfg["model_args"]["in_chans"])
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(ds, batch_size=512))
    return 100.0 * correct / len(ds)


def check_model_dir(d: Path) -> int:
    """``d`` loads and evaluates to its recorded top-1; returns its in_chans (which run it belongs to)."""
    cfg = json.loads((d / "config.json").read_text())
    assert top1_of(d) == pytest.approx(cfg["metrics"]["top1"], abs=1e-9), d
    return int(cfg["model_args"]["in_chans"])


def check_state(run: Path) -> int | None:
    """``state/`` holds exactly one complete pair (never two steps); its in_chans."""
    if not (run / "state").exists():
        return None
    assert len(list((run / "state").glob("ckpt-*.json"))) == 1 and len(list((run / "state").glob("ckpt-*.safetensors"))) == 1
    meta, _ = find_state(run / "state")
    return int(meta["extra"]["config"]["data"]["in_chans"])


def leftovers(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob(".*") if ".tmp" in p.name or ".old-" in p.name)


@pytest.mark.slow
def test_sigkill_during_force_leaves_the_old_or_the_new_run(tmp_path):
    run = tmp_path / "run"
    timed_run(cmd(run, "--epochs", "1"))  # the finished run to be replaced: 3-channel
    (run / "notes.txt").write_text("mine")  # not a run file: survives the switch
    new = ["--force", "--epochs", "2", "--set", "data.in_chans=1"]  # the new run: 1-channel (shapes differ)
    shutil.copytree(run, tmp_path / "probe")
    duration = timed_run(cmd(tmp_path / "probe", *new))
    seen = []
    for k in range(1, KILLS + 1):
        kill_after(cmd(run, *new), duration * k / (KILLS + 1))
        chans = check_model_dir(run / "best")
        assert check_model_dir(run / "last") == chans and check_state(run) == chans  # one run, never a mix
        assert top1_of(run) == pytest.approx(json.loads((run / "best" / "config.json").read_text())["metrics"]["top1"])
        assert (run / "notes.txt").read_text() == "mine"
        seen.append(chans)
    assert seen[0] == 3 and 1 in seen, seen  # kills before and after the switch
    timed_run(cmd(run, *new))
    assert check_model_dir(run / "best") == 1 and (run / "notes.txt").read_text() == "mine"
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_sigkill_with_a_state_every_step_always_leaves_a_loadable_run(tmp_path):
    args = ["--epochs", "3", "--set", "train.checkpoint_every=1"]
    duration = timed_run(cmd(tmp_path / "probe", *args))
    runs = []
    for k in range(1, KILLS + 1):
        run = tmp_path / f"run{k}"
        kill_after(cmd(run, *args), duration * k / (KILLS + 1))
        for d in ("best", "last"):
            if (run / d).exists():
                check_model_dir(run / d)
        if (run / "best").exists():
            assert top1_of(run) == pytest.approx(json.loads((run / "best" / "config.json").read_text())["metrics"]["top1"])
        check_state(run)
        steps = [json.loads(x)["step"] for x in (run / "steps.jsonl").read_text().splitlines()] \
            if (run / "steps.jsonl").exists() else []
        assert steps == list(range(1, len(steps) + 1))
        runs.append(run)
    assert any((r / "best").exists() for r in runs) and any(not (r / "best").exists() for r in runs)
    last = next(r for r in reversed(runs) if find_state(r / "state") is not None)
    timed_run([sys.executable, "-m", "sdnet_cli", "train", "--output", str(last), "--resume"])
    ref = tmp_path / "ref"  # the uninterrupted run (made last: same code as the resumed one while others edit it)
    timed_run(cmd(ref, *args))
    wa, wb = load_file(str(ref / "last" / "model.safetensors")), load_file(str(last / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # resumed = uninterrupted
    steps = [json.loads(x)["step"] for x in (last / "steps.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))
    assert leftovers(last) == []

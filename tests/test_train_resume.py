"""Exact resume: SIGKILL mid-epoch / Ctrl-C, then --resume, equals an uninterrupted run; atomic states."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sdnet_cli.engine.state import LoopState, find_state, load_state, save_state
from sdnet_cli.models import create_model

ARGS = ["--epochs", "2", "--batch-size", "16", "--set", "train.limit_batches=4", "--set", "data.image_size=8",
        "--set", "train.threads=1", "--set", "train.eval_batch_size=512", "--set", "train.checkpoint_every=2",
        "--set", "train.tensorboard=false", "--seed", "7"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sdnet_cli", "train", "--output", str(out), *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_step(out: Path, step: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = find_state(out / "state") if (out / "state").is_dir() else None
        if found and found[0]["loop"]["global_step"] >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in rows]


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "last" / "model.safetensors")), load_file(str(b / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # bitwise
    assert metrics(a) == metrics(b)
    la = [json.loads(line)["loss"] for line in (a / "steps.jsonl").read_text().splitlines()]
    lb = [json.loads(line)["loss"] for line in (b / "steps.jsonl").read_text().splitlines()]
    assert la == lb and len(la) == 8


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    p = cli(out)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return out


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_exact(reference, tmp_path):
    out = tmp_path / "run"
    p = cli(out)
    wait_for_step(out, 6, p)  # epoch 2, batch 2 of 4 (states saved every step)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert find_state(out / "state")[0]["loop"]["global_step"] < 8 or p.returncode == 0
    r = subprocess.run([sys.executable, "-m", "sdnet_cli", "train", "--output", str(out), "--resume"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert_same_run(reference, out)


@pytest.mark.slow
def test_ctrl_c_saves_state_exits_130_and_resumes_exactly(reference, tmp_path):
    out = tmp_path / "run"
    p = cli(out)
    wait_for_step(out, 3, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "--resume" in err
    loop = find_state(out / "state")[0]["loop"]
    assert 3 <= loop["global_step"] < 8
    r = subprocess.run([sys.executable, "-m", "sdnet_cli", "train", "--output", str(out), "--resume"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert_same_run(reference, out)


def _tiny():
    torch.manual_seed(0)
    model = create_model("sdnet18", num_classes=10)
    model(torch.randn(2, 3, 8, 8))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return model, opt


def test_state_round_trip_restores_everything(tmp_path):
    model, opt = _tiny()
    loop = LoopState(epoch=1, batch=3, global_step=9, best_metric=50.0, best_epoch=1, history=[{"epoch": 1}],
                     meter={"loss": 1.5, "n": 32.0})
    save_state(tmp_path, model, opt, loop)
    expect_rand = torch.rand(3)
    model2, opt2 = create_model("sdnet18", num_classes=10), None
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    torch.rand(5)  # move the RNG away
    loop2, _ = load_state(tmp_path, model2, opt2)
    assert loop2 == loop
    assert torch.equal(torch.rand(3), expect_rand)  # RNG restored to the saved point
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for pid in s1["state"]:
        for name, v in s1["state"][pid].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][pid][name]))
    from sdnet_cli.layers import csc_layers

    assert all(torch.equal(a._v, b._v) and b._step_size_ready for a, b in zip(csc_layers(model), csc_layers(model2)))


def test_crash_between_files_keeps_previous_state(tmp_path, monkeypatch):
    model, opt = _tiny()
    save_state(tmp_path, model, opt, LoopState(global_step=1))
    import sdnet_cli.engine.state as st

    def boom(*a, **k):
        raise OSError("disk died")

    monkeypatch.setattr(st, "atomic_write_json", boom)
    with pytest.raises(OSError, match="disk died"):
        save_state(tmp_path, model, opt, LoopState(global_step=2))
    meta, _ = find_state(tmp_path)
    assert meta["loop"]["global_step"] == 1


@pytest.mark.slow
def test_sigkill_during_state_writes_never_leaves_a_broken_state(tmp_path):
    script = textwrap.dedent(f"""
        import torch
        from sdnet_cli.engine.state import LoopState, save_state
        from sdnet_cli.layers import CSCConv2d
        m = torch.nn.Sequential(CSCConv2d(3, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.Conv2d(64, 512, 3))
        o = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        m(torch.randn(2, 3, 8, 8)).sum().backward(); o.step()
        print("ready", flush=True)
        for step in range(1, 10**6):
            save_state({str(tmp_path)!r}, m, o, LoopState(global_step=step))
    """)
    from sdnet_cli.layers import CSCConv2d

    for delay in (0.05, 0.4):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=ENV)
        assert p.stdout.readline().strip() == "ready"
        while find_state(tmp_path) is None:  # the first state is complete
            time.sleep(0.01)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        meta, _ = find_state(tmp_path)
        model = torch.nn.Sequential(CSCConv2d(3, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.Conv2d(64, 512, 3))
        loop, _ = load_state(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        assert loop.global_step == meta["loop"]["global_step"] >= 1

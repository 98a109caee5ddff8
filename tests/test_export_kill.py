"""Re-export into an existing export, killed with a real SIGKILL at many moments: the folder is always whole.

Two digits model directories (sdnet18 and sdnet18_all without shortcut; their accuracy on the digits test
split measured and recorded in config.json first) are exported alternately into one folder by real
``python -m sdnet_cli export`` processes; each is killed — some at moments spread over the whole run,
most while its staging folder exists (the only window in which anything is written). After every kill
the folder holds exactly one of the two exports (weights and config.json of the same model) and
evaluates to that model's accuracy; the next export removes the killed one's temporaries.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hub_server import make_model_dir
from sdnet_cli.engine.eval_model import EvalOptions, evaluate
from sdnet_cli.models.files import load_model_dir, save_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}


def _export(src: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sdnet_cli", "export", str(src), "--output", str(out)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _temporaries(out: Path) -> list[str]:
    """Staging/backup siblings of ``out`` and ``*.tmp`` files inside it."""
    siblings = [p.name for p in out.parent.iterdir() if p.name.startswith(".sdnet.")]
    inside = [p.name for p in out.glob("*.tmp")] + [p.name for p in out.glob(".*.tmp")]
    return siblings + inside


def _kill_at(src: Path, out: Path, delay: float, after_staging: bool) -> bool:
    """Start an export and SIGKILL it ``delay`` s after its start (or after its staging folder appeared).

    Returns whether the process was killed while its staging folder existed.
    """
    proc = _export(src, out)
    start = time.monotonic()
    if after_staging:
        pattern = f".sdnet.tmp-{proc.pid}-*"
        while not list(out.parent.glob(pattern)) and proc.poll() is None:
            time.sleep(0.0005)
        start = time.monotonic()
    while time.monotonic() - start < delay and proc.poll() is None:
        time.sleep(0.0005)
    staging = bool(list(out.parent.glob(f".sdnet.tmp-{proc.pid}-*")))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return staging and proc.returncode == -signal.SIGKILL


def _which(out: Path, refs: dict[str, dict]) -> str:
    """The name of the export ``out`` holds: weights and config.json must both be that one's."""
    weights = load_file(out / "model.safetensors")
    config = json.loads((out / "config.json").read_text())
    for name, ref in refs.items():
        if weights.keys() == ref["weights"].keys() and all(torch.equal(weights[k], ref["weights"][k]) for k in weights):
            assert config == ref["config"], f"weights of {name} with the config.json of another model"
            return name
    raise AssertionError("the export folder holds weights of neither model")


def _recorded(folder: Path) -> Path:
    """Measure the model's top-1 on the digits test split and record it in its config.json metrics."""
    acc = evaluate(EvalOptions(str(folder), device="cpu")).top1
    model, config = load_model_dir(folder)
    config.metrics = {**config.metrics, "top1": acc, "split": "test"}
    return save_model(model, folder, config)


@pytest.mark.slow
def test_sigkill_during_reexport_leaves_old_or_new(tmp_path) -> None:
    sources = {"sdnet18": _recorded(make_model_dir(tmp_path / "src" / "a", "sdnet18", seed=0)[0]),
               "sdnet18_all": _recorded(make_model_dir(tmp_path / "src" / "b", "sdnet18_all", seed=1, shortcut=False)[0])}
    digits_model_dir, digits_all_noshortcut_model_dir = sources["sdnet18"], sources["sdnet18_all"]
    refs: dict[str, dict] = {}
    for name, src in sources.items():
        ref_dir = tmp_path / "ref" / name
        t0 = time.monotonic()
        assert _export(src, ref_dir).wait() == 0
        duration = time.monotonic() - t0
        acc = evaluate(EvalOptions(str(ref_dir), device="cpu")).top1
        recorded = json.loads((src / "config.json").read_text())["metrics"]
        if recorded.get("split", "test") == "test" and "top1" in recorded:
            assert acc == pytest.approx(recorded["top1"], abs=1e-6)  # the accuracy config.json records
        refs[name] = {"weights": load_file(ref_dir / "model.safetensors"),
                      "config": json.loads((ref_dir / "config.json").read_text()), "acc": acc}
    out = tmp_path / "exports" / "digits"
    assert _export(digits_model_dir, out).wait() == 0
    # 3 moments spread over a whole run, 7 inside the write window (after the staging folder appeared)
    plans = [(f * duration, False) for f in (0.3, 0.6, 0.9)] + \
            [(d, True) for d in (0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)]
    mid_write, outcomes = 0, []
    for i, (delay, after_staging) in enumerate(plans):
        current = _which(out, refs)
        other = "sdnet18_all" if current == "sdnet18" else "sdnet18"
        mid_write += _kill_at(sources[other], out, delay, after_staging)
        held = _which(out, refs)
        outcomes.append("new" if held == other else "old")
        acc = evaluate(EvalOptions(str(out), device="cpu")).top1
        assert acc == refs[held]["acc"], (i, held)
        assert len([t for t in _temporaries(out) if ".tmp-" in t]) <= 1  # the next export removed earlier ones
    assert mid_write >= 5, f"only {mid_write} kills landed while writing"
    assert _export(digits_all_noshortcut_model_dir, out).wait() == 0
    assert _temporaries(out) == [] and _which(out, refs) == "sdnet18_all"
    print(f"kills: {len(plans)}, while writing: {mid_write}, outcomes: {outcomes}")

"""`sdnet eval`: reproduces the training-time accuracy, --lambda overrides λ, per-class numbers, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import invoke

import sdnet_cli as sd
from sdnet_cli.data.datasets import build_dataset


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    r = invoke(["train", "--output", str(out), "--epochs", "1", "--batch-size", "32", "--set", "train.limit_batches=3",
                "--set", "train.threads=1", "--set", "train.tensorboard=false"])
    assert r.exit_code == 0, r.output
    return out


def test_eval_reproduces_training_accuracy(run_dir):
    r = invoke(["eval", str(run_dir), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    recorded = json.loads((run_dir / "best" / "config.json").read_text())["metrics"]
    assert res["top1"] == recorded["top1"] and res["top5"] == recorded["top5"]
    assert res["loss"] == pytest.approx(recorded["loss"], rel=1e-6)
    assert res["recorded_top1"] == recorded["top1"] and res["images"] == 360 and res["image_size"] == 8
    assert res["images_per_s"] > 0 and len(res["per_class"]) == 10


def test_eval_numbers_match_an_independent_loop(run_dir):
    model = sd.load_model(run_dir)
    ds = build_dataset("digits", "test", image_size=8)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = np.array([ds[i][1] for i in range(len(ds))])
    sd.set_lmbd(model, 0.4, "all")
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    r = invoke(["eval", str(run_dir / "best"), "--lambda", "0.4", "--lambda-layers", "all", "--batch-size", "50", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["top1"] == pytest.approx(100.0 * (pred == y).mean())
    for c in range(10):
        assert res["per_class"][c] == pytest.approx(100.0 * (pred[y == c] == c).mean(), abs=1e-3)
    assert res["lmbd"] == 0.4 and res["lmbd_layers"] == "all"


def test_eval_human_output(run_dir):
    r = invoke(["eval", str(run_dir)])
    assert r.exit_code == 0, r.output
    assert "top-1" in r.output and "recorded at training time" in r.output and "per-class" in r.output


@pytest.mark.parametrize("args, words", [
    (["/nonexistent/model/dir"], []),
    (["RUN", "--lambda-layers", "some"], ["--lambda-layers"]),
    (["RUN", "--dataset", "cifar100", "--no-download", "--data-root", "/nonexistent"], ["cifar100"]),
    (["RUN", "--lambda", "-1"], ["--lambda"]),
])
def test_eval_bad_input_exits_2(run_dir, args, words):
    args = [str(run_dir) if a == "RUN" else a for a in args]
    r = invoke(["eval", *args])
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    for w in words:
        assert w in r.output

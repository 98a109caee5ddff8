"""Model selection on a held-out validation split (data.val_split), the library call `train(cfg)` directly."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, Subset

import sdnet_cli as sd
from sdnet_cli.config import resolve_config
from sdnet_cli.data.datasets import build_dataset
from sdnet_cli.data.splits import train_val_indices
from sdnet_cli.engine.train import train

TINY = ["train.epochs=2", "train.batch_size=16", "train.limit_batches=2", "data.image_size=8", "train.threads=1",
        "train.eval_batch_size=512", "train.tensorboard=false", "train.seed=3"]


@torch.no_grad()
def top1(model, ds) -> float:
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(ds, batch_size=512))
    return 100.0 * correct / len(ds)


def test_best_is_selected_on_held_out_training_images(tmp_path):
    out = tmp_path / "run"
    result = train(resolve_config(None, {"train.output": str(out)}, TINY))
    assert result.selected_on == "val"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best_row = max(rows, key=lambda r: r["val_top1"])  # first of equals: a later epoch must beat it
    metrics = json.loads((out / "best" / "config.json").read_text())["metrics"]
    assert metrics["epoch"] == best_row["epoch"] == result.best_epoch
    assert metrics["selected_on"] == "val" and metrics["checkpoint"] == "best" and metrics["val_split"] == 0.1
    assert metrics["seed"] == 3 and result.best_top1 == pytest.approx(best_row["val_top1"])
    # the validation split is the held-out part of the training set (no augmentation), computed here
    plain = build_dataset("digits", "train", image_size=8)
    _, val_idx = train_val_indices(len(plain), 0.1, seed=3)
    model = sd.load_model(out / "best")
    assert top1(model, Subset(plain, val_idx.tolist())) == pytest.approx(metrics["val_top1"], abs=1e-9)
    assert top1(model, build_dataset("digits", "test", image_size=8)) == pytest.approx(metrics["top1"], abs=1e-9)


def test_val_split_zero_selects_on_test_and_says_so(tmp_path):
    out = tmp_path / "run"
    result = train(resolve_config(None, {"train.output": str(out)}, [*TINY, "data.val_split=0"]))
    assert result.selected_on == "test" and result.val_top1 is None
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("val_top1" not in r and r["selected_on"] == "test" for r in rows)
    metrics = json.loads((out / "best" / "config.json").read_text())["metrics"]
    assert metrics["selected_on"] == "test" and metrics["val_split"] == 0.0 and "val_top1" not in metrics
    assert metrics["epoch"] == max(rows, key=lambda r: r["test_top1"])["epoch"]


@pytest.mark.slow
def test_cli_and_library_call_train_the_same_model(tmp_path):
    from safetensors.torch import load_file
    from train_helpers import invoke

    lib, cli = tmp_path / "lib", tmp_path / "cli"
    result = train(resolve_config(None, {"train.output": str(lib)}, TINY))
    r = invoke(["train", "--output", str(cli), "--json", *[a for kv in TINY for a in ("--set", kv)]])
    assert r.exit_code == 0, r.output
    printed = json.loads(r.stdout.strip().splitlines()[-1])
    assert printed["top1"] == result.top1 and printed["best_epoch"] == result.best_epoch
    wa, wb = load_file(str(lib / "last" / "model.safetensors")), load_file(str(cli / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

"""`sdnet train` end to end on tiny runs: output layout, refusal/force, fake CIFAR, ImageFolder, errors, NaN."""

from __future__ import annotations

import json

import pytest
from train_helpers import invoke, write_fake_cifar, write_image_folder
from safetensors.torch import load_file

import sdnet_cli as sd
from sdnet_cli.config import apply_overrides, preset
from sdnet_cli.engine import trainer as trainer_mod
from sdnet_cli.engine.state import find_state

TINY = ["--batch-size", "16", "--set", "train.limit_batches=2", "--set", "data.image_size=8",
        "--set", "train.threads=1", "--set", "train.eval_batch_size=512"]


def run(args):
    return invoke(["train", *args])


def test_digits_run_layout_and_resume_refusal(tmp_path):
    out = tmp_path / "run"
    r = run(["--output", str(out), "--epochs", "2", "--json", *TINY])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["output"] == str(out) and result["epochs"] == 2 and result["steps"] == 4
    for item in ("config.yaml", "metrics.jsonl", "steps.jsonl", "best/model.safetensors", "best/config.json",
                 "last/model.safetensors", "last/config.json"):
        assert (out / item).is_file(), item
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r_["epoch"] for r_ in rows] == [1, 2]
    for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "test_loss", "test_top1", "test_top5",
                "lr", "time", "images_per_s"):
        assert all(key in r_ for r_ in rows)
    assert all(r_["selected_on"] == "val" for r_ in rows) and result["selected_on"] == "val"
    assert rows[-1]["test_top1"] == pytest.approx(result["top1"])
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]
    assert all(s["wall_s"] > 0 and 0 <= s["data_s"] <= s["wall_s"] for s in steps)
    cfg = json.loads((out / "last" / "config.json").read_text())
    assert cfg["dataset"] == "digits" and cfg["metrics"]["epoch"] == 2 and cfg["metrics"]["image_size"] == 8
    assert cfg["metrics"]["top1"] == pytest.approx(rows[-1]["test_top1"])
    assert cfg["metrics"]["checkpoint"] == "last" and cfg["metrics"]["selected_on"] == "val"
    assert cfg["metrics"]["val_split"] == 0.1 and cfg["metrics"]["val_top1"] == pytest.approx(rows[-1]["val_top1"])
    assert cfg["mean"] == pytest.approx([0.3054] * 3)
    best_epoch = max(rows, key=lambda r_: r_["val_top1"])["epoch"]
    best_metrics = json.loads((out / "best" / "config.json").read_text())["metrics"]
    assert best_metrics["epoch"] == best_epoch and best_metrics["checkpoint"] == "best"
    # resolved config saved; load_model(run dir) picks best/
    saved = apply_overrides(preset("digits"), ["train.epochs=2", "train.batch_size=16", "train.limit_batches=2",
                                               "data.image_size=8", "train.threads=1", "train.eval_batch_size=512",
                                               f"train.output={out}"])
    from sdnet_cli.config import load_config

    assert load_config(out / "config.yaml").to_dict() == saved.to_dict()
    m = sd.load_model(out)
    best = load_file(str(out / "best" / "model.safetensors"))
    assert all((m.state_dict()[k] == v).all() for k, v in best.items())
    meta, _ = find_state(out / "state")
    assert meta["loop"]["epoch"] == 2 and meta["loop"]["global_step"] == 4
    assert "sdnet eval" in r.output and "sdnet robust" in r.output and "sdnet export" in r.output
    # an existing run is refused without --resume/--force, and nothing is touched
    before = (out / "last" / "model.safetensors").read_bytes()
    r = run(["--output", str(out), "--epochs", "1", *TINY])
    assert r.exit_code == 2 and "holds another run" in r.output and "--force" in r.output
    assert (out / "last" / "model.safetensors").read_bytes() == before
    r = run(["--output", str(out), "--epochs", "1", "--force", *TINY])
    assert r.exit_code == 0, r.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_fake_cifar_smoke(tmp_path, name):
    write_fake_cifar(tmp_path / "data", name, n_train=40, n_test=10)
    out = tmp_path / "run"
    r = run(["--dataset", name, "--data-root", str(tmp_path / "data"), "--no-download", "--epochs", "1",
             "--batch-size", "8", "--set", "train.limit_batches=2", "--set", "train.threads=1", "--output", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "best" / "config.json").read_text())
    assert cfg["num_classes"] == (10 if name == "cifar10" else 100) and cfg["dataset"] == name
    assert cfg["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    assert cfg["metrics"]["image_size"] == 32


def test_imagenet_folder_smoke(tmp_path):
    write_image_folder(tmp_path / "inet", classes=3, per_class=4, size=36)
    out = tmp_path / "run"
    r = run(["--dataset", "imagenet", "--data-root", str(tmp_path / "inet"), "--epochs", "1", "--batch-size", "4",
             "--set", "data.image_size=32", "--set", "data.workers=0", "--set", "train.limit_batches=2",
             "--set", "train.threads=1", "--output", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "best" / "config.json").read_text())
    assert cfg["stem_type"] == "imagenet" and cfg["num_classes"] == 3


def test_unreadable_image_stops_with_one_line(tmp_path):
    write_image_folder(tmp_path / "inet", classes=2, per_class=2, size=36)
    for p in (tmp_path / "inet" / "train").rglob("*.png"):
        p.write_bytes(b"broken")
    r = run(["--dataset", "imagenet", "--data-root", str(tmp_path / "inet"), "--epochs", "1", "--batch-size", "2",
             "--set", "data.image_size=32", "--workers", "1", "--set", "train.threads=1", "--output", str(tmp_path / "run")])
    assert r.exit_code == 2
    assert "cannot read image" in r.output and "skip_bad_images" in r.output


def test_cifar_missing_offline_exit_2(tmp_path):
    r = run(["--dataset", "cifar10", "--data-root", str(tmp_path / "none"), "--no-download",
             "--output", str(tmp_path / "run")])
    assert r.exit_code == 2
    assert "cifar-10-python.tar.gz" in r.output and "--data-root" in r.output
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    r = run(["--output", str(out), "--epochs", "1", *TINY])
    assert r.exit_code == 0, r.output
    good = (out / "last" / "model.safetensors").read_bytes()
    state_before = sorted(p.name for p in (out / "state").iterdir())
    real = trainer_mod.criterion
    calls = {"n": 0}

    def nan_on_second(logits, target, ls):
        calls["n"] += 1
        loss = real(logits, target, ls)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(trainer_mod, "criterion", nan_on_second)
    r = run(["--output", str(out), "--resume", "--epochs", "2", *TINY])
    assert r.exit_code == 2
    assert "loss is nan at step 4 (epoch 2, batch 2)" in r.output and "last good checkpoint" in r.output
    assert (out / "last" / "model.safetensors").read_bytes() == good
    assert sorted(p.name for p in (out / "state").iterdir()) == state_before


def test_digits_one_channel_trains_and_evaluates(tmp_path):
    out = tmp_path / "run"
    r = run(["--output", str(out), "--epochs", "1", "--set", "data.in_chans=1", *TINY])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "best" / "config.json").read_text())
    assert cfg["model_args"]["in_chans"] == 1 and cfg["mean"] == pytest.approx([0.3054])
    assert sd.load_model(out).layer0[0].weight.shape[1] == 1
    r = invoke(["eval", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["top1"] == cfg["metrics"]["top1"]
    r = run(["--output", str(tmp_path / "r2"), "--dataset", "cifar10", "--set", "data.in_chans=1", "--batch-size", "16"])
    assert r.exit_code == 2 and "data.in_chans=1" in r.output


@pytest.mark.parametrize("lr, what", [("1e38", "the weights are"), ("1e20", "a CSC step size is")])
def test_non_finite_weights_or_step_sizes_stop_at_that_step(tmp_path, lr, what):
    # A finite but absurd SGD lr: at 1e38 the float32 update overflows the weights; at 1e20 they stay finite,
    # but the atoms' norms overflow in the step-size refresh, whose step size turns inf. The old guard only
    # saw the loss of the next step (step 2), after a forward through the broken layers.
    out = tmp_path / "run"
    r = run(["--output", str(out), "--epochs", "1", "--lr", lr, "--set", "optim.name=sgd", *TINY])
    assert r.exit_code == 2, r.output
    assert f"{what} not finite after the optimizer step at step 1 (epoch 1, batch 1)" in r.output
    assert "last good checkpoint" in r.output and "Traceback" not in r.output
    assert not (out / "last").exists() and not (out / "state").exists()

"""Model directories at the boundary: config.json schema, weight checks, and writing a folder as a whole.

Each bad config.json / weights file: ``sdnet export`` exits 2 with one line naming the problem and writes
nothing; ``load_model`` raises the same ``UsageError``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hub_server import make_model_dir, run_cli
from sdnet_cli import load_model
from sdnet_cli.errors import UsageError
from sdnet_cli.fsio import staged_dir
from sdnet_cli.models.files import ModelConfig, read_config, save_model


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("files") / "good")[0]


def _copy(good: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("model.safetensors", "config.json"):
        os.link(good / name, dst / name)
    return dst


def _set(obj: dict, key: str, value) -> dict:
    if key.startswith("model_args."):
        obj["model_args"][key.split(".", 1)[1]] = value
    else:
        obj[key] = value
    return obj


CONFIG_CASES = [
    # (mutation of the parsed config.json, text the one line must contain)
    (lambda c: [c], "holds a list, not an object"),
    (lambda c: "sdnet18", "holds a string, not an object"),
    (lambda c: {k: v for k, v in c.items() if k != "num_classes"}, "lacks num_classes"),
    (lambda c: _set(c, "num_classes", "10"), "num_classes must be an integer >= 1, got '10' (a string)"),
    (lambda c: _set(c, "num_classes", -1), "num_classes must be an integer >= 1, got -1"),
    (lambda c: _set(c, "num_classes", 0), "num_classes must be an integer >= 1, got 0"),
    (lambda c: _set(c, "num_classes", True), "num_classes must be an integer >= 1, got True (a boolean)"),
    (lambda c: _set(c, "num_classes", 10.0), "num_classes must be an integer >= 1, got 10.0"),
    (lambda c: _set(c, "architecture", "sdnet19"), "unknown model 'sdnet19'"),
    (lambda c: _set(c, "architecture", 18), "architecture must be a model name"),
    (lambda c: _set(c, "stem_type", "mnist"), "stem_type must be one of cifar, imagenet, got 'mnist'"),
    (lambda c: _set(c, "model_args", [1, 2]), "model_args must be an object"),
    (lambda c: _set(c, "model_args.lmbd", -1), "model_args.lmbd must be a finite number >= 0, got -1"),
    (lambda c: _set(c, "model_args.lmbd", float("nan")), "model_args.lmbd must be a finite number >= 0, got nan"),
    (lambda c: _set(c, "model_args.lmbd", "0.1"), "model_args.lmbd must be a finite number >= 0, got '0.1'"),
    (lambda c: _set(c, "model_args.mu", float("inf")), "model_args.mu must be a finite number >= 0, got inf"),
    (lambda c: _set(c, "model_args.n_steps", 0), "model_args.n_steps must be an integer >= 1, got 0"),
    (lambda c: _set(c, "model_args.n_steps", 2.5), "model_args.n_steps must be an integer >= 1, got 2.5"),
    (lambda c: _set(c, "model_args.non_negative", "yes"), "model_args.non_negative must be true or false"),
    (lambda c: _set(c, "model_args.expansion", 0), "model_args.expansion must be an integer >= 1"),
    (lambda c: _set(c, "model_args.in_chans", -3), "model_args.in_chans must be an integer >= 1"),
    (lambda c: _set(c, "model_args.shortcut", False), "model_args.shortcut is not an argument of sdnet18"),  # *_all only
    (lambda c: _set(c, "model_args.lambda", 0.1), "model_args.lambda is not an argument of sdnet18"),
    (lambda c: _set(c, "model_args.num_classes", 10), "model_args.num_classes belongs at the top level"),
    (lambda c: _set(c, "std", [0, 0, 0]), "std must be > 0 for every channel"),
    (lambda c: _set(c, "std", [0.3, float("nan"), 0.3]), "std must be a list of finite numbers"),
    (lambda c: _set(c, "mean", [0.5, 0.5]), "mean has 2 values but the model takes 3 input channels"),
    (lambda c: _set(c, "mean", "0.5"), "mean must be a list of finite numbers"),
    (lambda c: _set(c, "mean", None), "mean and std go together"),
    (lambda c: _set(c, "metrics", [87.5]), "metrics must be an object, got a list"),
    (lambda c: _set(c, "dataset", 10), "dataset must be a dataset name or null"),
]


@pytest.mark.parametrize("mutate, expect", CONFIG_CASES)
def test_bad_config_json_is_one_line_exit_2_nothing_written(good, tmp_path, capsys, mutate, expect) -> None:
    bad = _copy(good, tmp_path / "bad")
    (bad / "config.json").unlink()
    cfg = mutate(json.loads((good / "config.json").read_text()))
    (bad / "config.json").write_text(json.dumps(cfg))
    code, out, err = run_cli(capsys, "export", bad, "--output", tmp_path / "out")
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and expect in err, err
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["bad"]
    with pytest.raises(UsageError, match=re.escape(expect)):  # the Python API refuses it the same way
        load_model(bad)


def test_unreadable_config_json(good, tmp_path, capsys) -> None:
    bad = _copy(good, tmp_path / "bad")
    (bad / "config.json").unlink()
    (bad / "config.json").write_text('{"architecture": "sdnet18",')
    code, _, err = run_cli(capsys, "export", bad, "--output", tmp_path / "out")
    assert code == 2 and "is not valid JSON" in err and len(err.strip().splitlines()) == 1


def _with_tensor(good: Path, dst: Path, key: str, fn) -> Path:
    bad = _copy(good, dst)
    state = load_file(good / "model.safetensors")
    state[key] = fn(state[key])
    (bad / "model.safetensors").unlink()
    save_file(state, bad / "model.safetensors")
    return bad


@pytest.mark.parametrize("key, fn, expect", [
    ("layer1.0.conv1.weight", lambda t: t.index_fill(0, torch.tensor([3]), float("nan")),
     "tensor layer1.0.conv1.weight holds NaN values"),
    ("linear.bias", lambda t: t.index_fill(0, torch.tensor([0]), float("inf")), "tensor linear.bias holds infinite values"),
    ("layer0.0.step_size", lambda t: torch.full_like(t, float("nan")), "tensor layer0.0.step_size holds NaN"),
    ("linear.weight", lambda t: (t * 100).to(torch.int32), "tensor linear.weight is int32, not floating point"),
    ("layer0.1.num_batches_tracked", lambda t: t.float(), "tensor layer0.1.num_batches_tracked is float32, expected an integer"),
])
def test_bad_weights_are_refused_naming_the_tensor(good, tmp_path, capsys, key, fn, expect) -> None:
    bad = _with_tensor(good, tmp_path / "bad", key, fn)
    code, out, err = run_cli(capsys, "export", bad, "--output", tmp_path / "out")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert expect in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match=expect.split(" holds")[0].split(" is ")[0]):
        load_model(bad)


def test_float64_weights_load_as_floating(good, tmp_path) -> None:
    ok = _with_tensor(good, tmp_path / "f64", "linear.weight", lambda t: t.double())
    assert torch.equal(load_model(ok).linear.weight, load_file(good / "model.safetensors")["linear.weight"])


def test_official_checkpoint_with_nan_is_refused(tmp_path, capsys) -> None:
    from sdnet_cli.models.registry import create_model

    state = create_model("sdnet18", num_classes=10, stem_type="cifar").state_dict()
    state["layer2.0.bn1.running_var"][0] = float("nan")
    torch.save(state, tmp_path / "model_best.pth.tar")
    code, _, err = run_cli(capsys, "export", tmp_path / "model_best.pth.tar", "--arch", "sdnet18", "--num-classes", "10",
                           "--output", tmp_path / "out")
    assert code == 2 and "tensor layer2.0.bn1.running_var holds NaN" in err and not (tmp_path / "out").exists()


def test_save_model_replaces_the_folder_as_a_whole(good, tmp_path) -> None:
    """Weights and config switch together; files save_model does not write stay; a failed write changes nothing."""
    target = _copy(good, tmp_path / "m")
    (target / "notes.txt").write_text("mine")
    (target / ".model.safetensors.x1y2.tmp").write_bytes(b"left by a killed writer")
    cfg = ModelConfig("resnet18", 3, "cifar", {}, "digits", [0.5] * 3, [0.25] * 3, {"top1": 1.0})
    model = cfg.build()
    save_model(model, target, cfg)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors", "notes.txt"]
    assert read_config(target) == cfg and load_model(target).linear.out_features == 3
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging folder left
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def boom(staged: Path) -> None:
        (staged / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        with staged_dir(target, ("model.safetensors", "config.json")) as staged:
            boom(staged)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_save_model_into_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    cfg = ModelConfig("resnet18", 3)
    with pytest.raises(UsageError, match="is a file"):
        save_model(cfg.build(), tmp_path / "f", cfg)


def test_model_config_is_checked_at_construction() -> None:
    with pytest.raises(UsageError, match="num_classes must be an integer >= 1"):
        ModelConfig("sdnet18", num_classes=-1)
    with pytest.raises(UsageError, match="model_args.n_steps must be an integer >= 1"):
        ModelConfig("sdnet18", 10, model_args={"n_steps": 0})

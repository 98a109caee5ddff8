"""Config schema, YAML presets and --set overrides (library and CLI errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import invoke

from sdnet_cli.config import PRESETS, Config, apply_overrides, load_config, preset, resolve_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_files_equal_embedded_presets(name):
    assert load_config(CONFIGS / f"{name}.yaml").to_dict() == preset(name).to_dict()


def test_default_is_digits():
    assert Config().to_dict() == preset("digits").to_dict()
    assert Config().data.dataset == "digits" and Config().model.name == "sdnet18"


def test_paper_recipes():
    for name in ("cifar10", "cifar100"):
        c = preset(name)
        assert (c.data.dataset, c.optim.name, c.optim.lr, c.optim.momentum, c.optim.nesterov) == (name, "sgd", 0.1, 0.9, True)
        assert (c.optim.weight_decay, c.optim.schedule, c.train.epochs, c.train.batch_size) == (5e-4, "cosine", 220, 128)
        assert (c.model.lmbd, c.model.n_steps, c.model.non_negative) == (0.1, 2, True)
    c = preset("imagenet")
    assert (c.optim.weight_decay, c.optim.schedule, c.optim.milestones, c.optim.gamma) == (1e-4, "step", [30, 60, 90], 0.1)
    assert (c.train.epochs, c.train.batch_size, c.model.lmbd, c.model.n_steps) == (100, 512, 0.1, 2)


def test_overrides_are_typed():
    c = apply_overrides(Config(), ["train.epochs=3", "optim.lr=1e-3", "model.non_negative=false",
                                   "optim.milestones=5,7", "data.root=null", "data.image_size=32", "model.name=resnet18"])
    assert c.train.epochs == 3 and isinstance(c.train.epochs, int)
    assert c.optim.lr == pytest.approx(1e-3) and isinstance(c.optim.lr, float)
    assert c.model.non_negative is False and c.optim.milestones == [5, 7]
    assert c.data.root is None and c.data.image_size == 32 and c.model.name == "resnet18"
    c = apply_overrides(Config(), ["optim.milestones=[1, 2]", "optim.lr=1"])
    assert c.optim.milestones == [1, 2] and c.optim.lr == 1.0


@pytest.mark.parametrize("item, words", [
    ("train.epochs=abc", ["train.epochs", "integer"]),
    ("train.epochs=1.5", ["train.epochs", "integer"]),
    ("model.non_negative=maybe", ["model.non_negative", "true or false"]),
    ("optim.lr=fast", ["optim.lr", "number"]),
    ("optim.milestones=1,x", ["optim.milestones[1]", "integer"]),
    ("optim.name=adam", ["optim.name", "sgd, adamw"]),
    ("train.epoch=3", ["train.epoch", "unknown"]),
    ("foo.bar=1", ["foo.bar", "unknown", "sections"]),
    ("epochs=3", ["epochs", "section.name"]),
    ("train.epochs", ["KEY=VALUE"]),
])
def test_bad_overrides_name_the_key(item, words):
    with pytest.raises(ValueError) as e:
        apply_overrides(Config(), [item])
    for w in words:
        assert w in str(e.value)


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n bad: [\n")
    with pytest.raises(ValueError, match=r"bad YAML in .*bad.yaml line \d+"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ValueError, match="train.epochz"):
        load_config(unknown)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train:\n  epochs: three\n")
    with pytest.raises(ValueError, match="train.epochs: expected an integer"):
        load_config(wrong)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_partial_yaml_merges_over_defaults(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  lmbd: 0.3\ntrain:\n  epochs: 2\n")
    c = load_config(f)
    assert (c.model.lmbd, c.train.epochs, c.train.batch_size) == (0.3, 2, Config().train.batch_size)
    assert resolve_config(f, {"train.epochs": 5}, ["train.epochs=7"]).train.epochs == 7
    assert resolve_config(f, {"train.epochs": 5}).train.epochs == 5


def test_dataset_flag_selects_its_recipe():
    c = resolve_config(None, {"data.dataset": "cifar100"})
    assert c.to_dict() == preset("cifar100").to_dict()
    assert resolve_config(None, {"data.dataset": "cifar100", "train.epochs": 1}).train.epochs == 1


def test_to_yaml_round_trip(tmp_path):
    c = apply_overrides(preset("imagenet"), ["model.lmbd=0.25", "data.root=/data"])
    f = tmp_path / "r.yaml"
    f.write_text(c.to_yaml())
    assert load_config(f).to_dict() == c.to_dict()


@pytest.mark.parametrize("args, words", [
    (["--set", "train.epochs=abc"], ["train.epochs"]),
    (["--set", "train.nope=1"], ["train.nope"]),
    (["--dataset", "mnist"], ["unknown dataset", "mnist"]),
    (["--model", "sdnet19"], ["unknown model", "sdnet19"]),
])
def test_cli_bad_config_exits_2(args, words, tmp_path):
    r = invoke(["train", "--output", str(tmp_path / "run"), *args])
    assert r.exit_code == 2, r.output
    assert not (tmp_path / "run").exists()
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.output


def test_cli_bad_yaml_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: sdnet18\n")
    r = invoke(["train", "--config", str(bad), "--output", str(tmp_path / "run")])
    assert r.exit_code == 2 and "bad YAML" in r.output and len(r.stderr.strip().splitlines()) == 1

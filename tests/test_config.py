"""Config schema, YAML presets and --set overrides (library and CLI errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import invoke

from sdnet_cli.config import PRESETS, Config, apply_overrides, load_config, preset, resolve_config

CONFIGS = Path(__file__).resolve().parents[1] / "sdnet_cli" / "configs"


def test_presets_are_the_shipped_yaml_files(tmp_path, monkeypatch):
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(PRESETS)
    monkeypatch.chdir(tmp_path)  # read from the package, whatever the working directory
    for name in PRESETS:
        assert load_config(name).to_dict() == load_config(CONFIGS / f"{name}.yaml").to_dict() == preset(name).to_dict()
    assert preset("cifar10").optim.min_lr == 1e-6 and not preset("cifar10").train.drop_last


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
    with pytest.raises(FileNotFoundError, match=r"config file .*missing.yaml not found \(presets: digits"):
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


# -- value checks (sdnet_cli.config_checks): every key in range, before anything is read or written ----
def _scalar_type(tp):
    import types
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def test_every_numeric_key_has_a_range_rule():
    """A numeric key added to the schema without a range check fails here (the rules name existing keys only)."""
    import dataclasses
    import typing

    from sdnet_cli.config_checks import RULES

    numeric = set()
    for section in dataclasses.fields(Config):
        for name, tp in typing.get_type_hints(type(getattr(Config(), section.name))).items():
            tp = _scalar_type(tp)
            if tp in (int, float) or typing.get_origin(tp) is list:
                numeric.add(f"{section.name}.{name}")
    assert numeric - set(RULES) == {"data.image_size"}  # its minimum depends on the dataset's stem type
    assert set(RULES) <= numeric


BAD_VALUES = [
    ("model.lmbd=-1", "-1.0"), ("model.lmbd=nan", "nan"), ("model.lmbd=inf", "inf"), ("model.mu=-0.1", "-0.1"),
    ("model.n_steps=0", "0"), ("model.expansion=0", "0"), ("data.in_chans=2", "2"), ("data.workers=-1", "-1"),
    ("data.val_split=1", "1.0"), ("data.val_split=nan", "nan"), ("optim.lr=0", "0.0"), ("optim.lr=-1", "-1.0"),
    ("optim.lr=inf", "inf"), ("optim.lr=nan", "nan"), ("optim.momentum=1", "1.0"), ("optim.momentum=-0.5", "-0.5"),
    ("optim.weight_decay=-1e-4", "-0.0001"), ("optim.milestones=3,-1", "[3, -1]"), ("optim.gamma=0", "0.0"),
    ("optim.warmup_epochs=-1", "-1.0"), ("optim.label_smoothing=1", "1.0"), ("optim.grad_clip=-1", "-1.0"),
    ("optim.grad_clip=inf", "inf"), ("train.epochs=0", "0"), ("train.batch_size=0", "0"),
    ("train.eval_batch_size=-1", "-1"), ("train.seed=-1", "-1"), ("train.limit_batches=-1", "-1"),
    ("train.threads=-2", "-2"), ("train.checkpoint_every=-1", "-1"), ("train.step_size_every=-1", "-1"),
    ("data.image_size=3", "3"), ("data.image_size=0", "0"), ("data.image_size=-5", "-5"),
]


@pytest.mark.parametrize("item, shown", BAD_VALUES, ids=[i for i, _ in BAD_VALUES])
def test_out_of_range_value_names_key_value_and_how_to_set_it(item, shown):
    from sdnet_cli.errors import UsageError

    key = item.split("=")[0]
    with pytest.raises(UsageError) as e:
        resolve_config(None, {}, [item])
    msg = str(e.value)
    assert msg.startswith(f"{key} must be ") and f"got {shown}" in msg and f"--set {key}=" in msg, msg


def test_flag_keys_name_their_flag():
    from sdnet_cli.errors import UsageError

    with pytest.raises(UsageError, match=r"optim.lr must be a finite number > 0, got inf; set it with --lr "):
        resolve_config(None, {"optim.lr": float("inf")})
    with pytest.raises(UsageError, match=r"train.epochs must be an integer >= 1, got 0; set it with --epochs"):
        resolve_config(None, {"train.epochs": 0})


@pytest.mark.parametrize("item, attr, value", [
    ("model.lmbd=0", ("model", "lmbd"), 0.0), ("model.mu=0", ("model", "mu"), 0.0),
    ("optim.momentum=0", ("optim", "momentum"), 0.0), ("optim.grad_clip=0", ("optim", "grad_clip"), 0.0),
    ("optim.weight_decay=0", ("optim", "weight_decay"), 0.0), ("optim.lr=1e-12", ("optim", "lr"), 1e-12),
    ("optim.label_smoothing=0.99", ("optim", "label_smoothing"), 0.99), ("data.val_split=0", ("data", "val_split"), 0.0),
    ("data.image_size=8", ("data", "image_size"), 8), ("data.image_size=null", ("data", "image_size"), None),
    ("train.seed=4294967295", ("train", "seed"), 2**32 - 1), ("train.limit_batches=0", ("train", "limit_batches"), 0),
    ("data.in_chans=1", ("data", "in_chans"), 1), ("optim.milestones=0,5", ("optim", "milestones"), [0, 5]),
])
def test_boundary_values_are_accepted(item, attr, value):
    c = resolve_config(None, {}, [item])
    assert getattr(getattr(c, attr[0]), attr[1]) == value


@pytest.mark.parametrize("flags, items, words", [
    ({"data.dataset": "cifar10"}, ["data.in_chans=1"], ["data.in_chans=1", "digits"]),
    ({}, ["optim.schedule=step"], ["optim.milestones"]),
    ({"train.device": "cpu", "train.amp": True}, [], ["train.amp", "CUDA"]),
    ({"data.dataset": "cifar100"}, ["data.image_size=16"], ["data.image_size", "32"]),
    ({"data.dataset": "imagenet"}, ["data.image_size=16"], ["data.image_size", ">= 32", "imagenet stem"]),
    ({}, ["data.image_size=7"], ["data.image_size", ">= 8", "cifar stem"]),
    ({"model.name": "sdnet18x"}, [], ["unknown model", "sdnet18x"]),
])
def test_keys_that_only_make_sense_together(flags, items, words):
    from sdnet_cli.errors import UsageError

    with pytest.raises(UsageError) as e:
        resolve_config(None, flags, items)
    for w in words:
        assert w in str(e.value)


def test_paths_of_the_wrong_kind(tmp_path):
    from sdnet_cli.errors import UsageError

    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(UsageError, match=r"train.output .*afile is a file; --output expects a run directory"):
        resolve_config(None, {"train.output": str(f)})
    with pytest.raises(UsageError, match=r"afile/run is inside .*afile, which is a file"):
        resolve_config(None, {"train.output": str(f / "run")})
    with pytest.raises(UsageError, match=r"data.root .*afile is a file; --data-root expects the folder"):
        resolve_config(None, {"data.dataset": "cifar10", "data.root": str(f)})
    assert resolve_config(None, {"train.output": str(tmp_path / "new" / "run")}).train.output  # not created
    assert not (tmp_path / "new").exists()


def test_config_file_of_the_wrong_kind(tmp_path):
    from sdnet_cli.errors import MissingFileError, UsageError

    with pytest.raises(UsageError, match=r"is a folder; --config expects a YAML file"):
        resolve_config(tmp_path)
    binary = tmp_path / "c.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(UsageError, match=r"c.yaml is not a text \(UTF-8 YAML\) file"):
        resolve_config(binary)
    with pytest.raises(MissingFileError, match="not found"):
        resolve_config(tmp_path / "missing.yaml")
    listed = tmp_path / "l.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="expected a mapping of sections"):
        resolve_config(listed)
    with pytest.raises(UsageError, match=r"optim.milestones: expected a list"):
        resolve_config(None, {}, ["optim.milestones=[1,"])


def test_a_config_built_in_python_is_checked_by_train(tmp_path):
    """``train(cfg)`` re-checks a Config assembled in Python (no resolve_config) before touching the output."""
    from sdnet_cli.config import check_config
    from sdnet_cli.engine.train import train
    from sdnet_cli.errors import UsageError

    cfg = Config()
    cfg.model.lmbd = float("nan")
    cfg.train.output = str(tmp_path / "run")
    with pytest.raises(UsageError, match="model.lmbd must be a finite number >= 0, got nan"):
        check_config(cfg)
    with pytest.raises(UsageError, match="model.lmbd"):
        train(cfg)
    assert not (tmp_path / "run").exists()
    cfg.model.lmbd, cfg.optim.name = 0.1, "adam"  # a choice checked again (set_value is not on this path)
    with pytest.raises(UsageError, match="optim.name must be one of sgd, adamw, got 'adam'"):
        check_config(cfg)

"""One place per concept: each value checked once at its boundary, a model's arguments from its registration,
one tuple of CSC options (issue 26)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import sdnet_cli.bench.step as bench_step
import sdnet_cli.models.registry as registry
import sdnet_cli.models.schema as schema
from cli_helpers import run_cli
from sdnet_cli.bench import BenchOptions, run
from sdnet_cli.config import Config, check_config, resolve_config
from sdnet_cli.conversion import CSC_ARGS
from sdnet_cli.data.datasets import dataset_info
from sdnet_cli.engine.setup import build_optimizer, model_config
from sdnet_cli.errors import UsageError
from sdnet_cli.layers import csc_layers
from sdnet_cli.models.ecosystem import ECOSYSTEM_ARGS
from sdnet_cli.models.files import ModelConfig, load_model_dir, save_model
from sdnet_cli.models.resnet import ResNet


@pytest.fixture
def name_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of ``check_model_name`` (wherever it was imported), by model name."""
    calls: list[str] = []
    real = registry.check_model_name

    def counting(name: str) -> None:
        calls.append(name)
        real(name)

    for module in (registry, bench_step, schema):
        monkeypatch.setattr(module, "check_model_name", counting)
    return calls


def test_a_bench_run_checks_each_model_name_once(name_checks: list[str]) -> None:
    rep = run(BenchOptions(models=("resnet18", "sdnet18"), batch_size=2, image_size=8, steps=1, warmup=0,
                           memory=False, device="cpu", memory_reuse=False))
    assert [r.model for r in rep.results] == ["resnet18", "sdnet18"]
    assert sorted(name_checks) == ["resnet18", "sdnet18"]


def test_a_checked_name_is_looked_up_not_checked_again(name_checks: list[str]) -> None:
    registry.create_model("sdnet18", num_classes=3)
    assert registry.model_arg_names("sdnet18_all") >= {"shortcut", *CSC_ARGS}
    assert name_checks == []
    with pytest.raises(UsageError, match="did you mean 'sdnet18'"):  # an unknown name still gets the check's message
        registry.create_model("sdnet-18")
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        registry.model_arg_names("nope")


def test_the_model_config_of_a_run_checks_the_name_only_at_the_config_json_boundary(name_checks: list[str]) -> None:
    cfg = Config()
    model_config(cfg, dataset_info("digits"), 10).build()
    assert name_checks == ["sdnet18"]  # ModelConfig's schema check; model_config, model_arg_names, create_model: none


def test_resolving_a_config_checks_the_model_name_once(name_checks: list[str]) -> None:
    cfg = resolve_config(None, {"model.name": "torchvision:resnet18"})  # digits: the image size is chosen too
    assert cfg.data.image_size == 32 and name_checks == ["torchvision:resnet18"]


@pytest.mark.parametrize("key, value, words", [
    ("optim.lr", "0", "optim.lr must be a finite number > 0"),
    ("optim.name", "x", "optim.name"),
])
def test_optimizer_values_are_refused_by_the_config_check(tmp_path: Path, capsys, key, value, words) -> None:
    code, out, err = run_cli(capsys, "train", "--output", tmp_path / "run", "--set", f"{key}={value}")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "run").exists()


def test_build_optimizer_does_not_check_again() -> None:
    """An unchecked ``optim.name`` reaching ``build_optimizer`` is a bug (exit 1), not bad input."""
    cfg = Config()
    cfg.optim.name = "x"
    with pytest.raises(AssertionError, match="not checked"):
        build_optimizer(cfg, torch.nn.Linear(2, 2))


def test_amp_without_cuda_is_refused_by_the_config_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = Config()
    cfg.train.amp = True  # device auto, resolving to the CPU
    with pytest.raises(UsageError, match="train.amp needs a CUDA device"):
        check_config(cfg)


@pytest.mark.parametrize("name, key, value, words", [
    ("sdnet18", "shortcut", False, "model.shortcut=false applies to the *_all models only, not sdnet18"),
    ("resnet34", "shortcut", False, "not resnet34"),
    ("torchvision:resnet18", "width", 32, "model.width applies to the registry models"),
])
def test_model_options_the_builder_does_not_take_are_refused_by_the_config_check(name, key, value, words) -> None:
    cfg = Config()
    cfg.model.name, cfg.data.image_size = name, 32  # a size every model takes
    setattr(cfg.model, key, value)
    with pytest.raises(UsageError, match=words.replace("*", r"\*")):
        check_config(cfg)


def test_model_args_are_what_each_registered_builder_takes() -> None:
    """For every registered model: the run's ``model_args`` are options its builder was registered with, the CSC
    options are there iff the built model has CSC layers, and each reaches every CSC layer (as ``width`` does)."""
    with_shortcut_option = {"sdnet18_all", "sdnet34_all"}
    for name in registry.list_models():
        cfg = Config()
        cfg.model.name, cfg.model.lmbd, cfg.model.n_steps, cfg.model.width = name, 0.3, 3, 8
        cfg.model.shortcut = name not in with_shortcut_option  # False where the builder takes it
        check_config(cfg)
        mcfg = model_config(cfg, dataset_info("digits"), 10)
        model = mcfg.build()
        args = set(mcfg.model_args)
        layers = csc_layers(model)
        assert args <= registry.model_arg_names(name), name
        assert bool(layers) == bool(args & set(CSC_ARGS)), name
        assert all(float(m.lmbd) == 0.3 and m.n_steps == 3 for m in layers), name
        assert mcfg.model_args["width"] == 8 and model.num_features == 8 * 8, name
        assert ("shortcut" in args) == (name in with_shortcut_option), name
        assert all(b.shortcut is None for s in model.stages()[1:] for b in s) == (name in with_shortcut_option), name


ARG_VALUES = {"num_classes": 3, "stem_type": "imagenet", "in_chans": 1, "width": 16, "lmbd": 0.2, "mu": 0.1,
              "n_steps": 3, "non_negative": False, "expansion": 2, "power_iters": 2, "shortcut": False}
"""A valid value other than the default for every model argument of the registry's builders."""


def test_model_arg_names_are_exactly_the_arguments_create_model_takes() -> None:
    assert set().union(*(registry.model_arg_names(n) for n in registry.list_models())) == set(ARG_VALUES)
    for name in registry.list_models():
        accepted = registry.model_arg_names(name)
        for key, value in ARG_VALUES.items():
            if key in accepted:
                registry.create_model(name, **{"width": 8, key: value})
            else:
                with pytest.raises(UsageError, match=f"{key}|SDNet"):
                    registry.create_model(name, **{"width": 8, key: value})


@pytest.fixture
def extra_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two models registered for one test, with names that say nothing about their arguments."""
    for attr in ("_REGISTRY", "_DESCRIPTIONS", "_ARGS"):
        monkeypatch.setattr(registry, attr, dict(getattr(registry, attr)))
    conv = functools.partial(torch.nn.Conv2d)
    registry.register("plain_tiny", "no CSC layer", registry._BASE_ARGS)(
        lambda **kw: ResNet((1, 1, 1, 1), conv, conv, **kw))
    registry.register("coded_tiny", "CSC everywhere", registry.SDNET_ALL_ARGS)(
        lambda **kw: registry._sdnet_all((1, 1, 1, 1), **kw))


def test_a_models_arguments_come_from_its_registration_not_its_name(extra_models: None) -> None:
    assert not registry.model_arg_names("plain_tiny") & set(CSC_ARGS)
    with pytest.raises(UsageError, match="only apply to SDNet models"):
        registry.create_model("plain_tiny", lmbd=0.2)
    cfg = Config()
    cfg.model.name, cfg.model.lmbd, cfg.model.shortcut = "coded_tiny", 0.25, False
    check_config(cfg)
    mcfg = model_config(cfg, dataset_info("digits"), 10)
    assert mcfg.model_args == {"in_chans": 3, "lmbd": 0.25, "mu": 0.0, "n_steps": 2, "non_negative": True,
                               "expansion": 1, "shortcut": False}
    model = mcfg.build()
    assert len(csc_layers(model)) == 9 and all(float(m.lmbd) == 0.25 for m in csc_layers(model))
    cfg.model.name = "plain_tiny"
    assert model_config(cfg, dataset_info("digits"), 10).model_args == {"in_chans": 3}


def test_csc_options_are_one_tuple_and_power_iters_reaches_registry_models(tmp_path: Path) -> None:
    assert {"lmbd", "mu", "n_steps", "non_negative", "expansion", "power_iters"} == set(CSC_ARGS)
    assert registry.model_arg_names("sdnet18") & set(CSC_ARGS) == set(CSC_ARGS) == ECOSYSTEM_ARGS & set(CSC_ARGS)
    model = registry.create_model("sdnet18_all", num_classes=10, power_iters=3)
    assert [m.power_iters for m in csc_layers(model)] == [3] * len(csc_layers(model)) and len(csc_layers(model)) > 1
    with pytest.raises(UsageError, match="power_iters only apply to SDNet models"):
        registry.create_model("resnet18", power_iters=3)
    config = ModelConfig(architecture="sdnet18", num_classes=10, model_args={"power_iters": 0, "lmbd": 0.2})
    save_model(config.build(), tmp_path / "m", config)
    loaded, _ = load_model_dir(tmp_path / "m")
    assert [m.power_iters for m in csc_layers(loaded)] == [0]

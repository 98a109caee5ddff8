"""``torchvision:NAME`` / ``timm:NAME`` models everywhere a model name is: errors, model files, export/pull, training.

The slow test trains a stem-converted torchvision ResNet-18 on digits through ``sdnet train`` and runs
``sdnet robust``, ``sdnet visualize``, ``sdnet export`` and ``sdnet pull-weights`` (local stand-in Hub) on it.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import sdnet_cli as sd
from hub_server import FakeHub, run_cli
from sdnet_cli.errors import UsageError
from sdnet_cli.layers import CSCConv2d, csc_layers
from sdnet_cli.models.files import ModelConfig, save_model
from sdnet_cli.models.registry import check_model_name, model_arg_names


def _one_error_line(err: str) -> bool:
    return len([ln for ln in err.splitlines() if ln.strip()]) == 1


@pytest.mark.parametrize("args,needle", [
    (["--model", "torchvision:resnet19"], "did you mean torchvision:resnet18"),
    (["--model", "timm:convnext_nan"], "did you mean timm:convnext_nano"),
    (["--model", "tensorflow:resnet18"], "unknown model source"),
    (["--model", "torchvision:resnet18+middle"], "suffix after '+'"),
    (["--model", "torchvision:resnet18", "--set", "model.convert=half", "--set", "data.image_size=32"], "'half' is not a convolution of ResNet"),
    (["--model", "torchvision:resnet18", "--set", "model.convert=conv1,,layer1.0.conv1"], "comma-separated module names"),
    (["--model", "sdnet18", "--set", "model.convert=stem"], "has its CSC layers already"),
])
def test_bad_names_exit_2_with_one_line(capsys, tmp_path: Path, args: list[str], needle: str) -> None:
    code, _, err = run_cli(capsys, "train", *args, "--output", tmp_path / "run", "--epochs", "1")
    assert code == 2 and needle in err and _one_error_line(err), err
    assert not (tmp_path / "run").exists()


def test_timm_missing_is_a_clear_usage_error(monkeypatch, capsys, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_timm(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if name == "timm" or name.startswith("timm."):
            raise ImportError("No module named 'timm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(UsageError, match=r"pip install 'sdnet\[timm\]'"):
        check_model_name("timm:resnet18")
    code, _, err = run_cli(capsys, "train", "--model", "timm:resnet18", "--output", tmp_path / "run")
    assert code == 2 and "timm" in err and _one_error_line(err)


def test_conversion_errors_and_a_biased_stem() -> None:
    config = ModelConfig("torchvision:squeezenet1_0", 10, "imagenet", {"convert": "stem"})  # a plain model: fine
    assert isinstance(config.build().features[0], CSCConv2d)
    with pytest.raises(UsageError, match="nothing to convert"):
        sd.convert(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1)), "all")
    bad = ModelConfig("torchvision:resnet18", 10, "cifar", {})
    with pytest.raises(UsageError, match="own .ImageNet-style. stem"):
        bad.build()


def test_model_args_and_config_round_trip(tmp_path: Path) -> None:
    assert {"convert", "init", "lmbd", "n_steps", "num_classes", "in_chans"} <= model_arg_names("timm:resnet18")
    assert sd.create_model("torchvision:resnet18+stem", num_classes=10).conv1.__class__ is CSCConv2d
    with pytest.raises(UsageError, match="also pass convert"):
        sd.create_model("torchvision:resnet18", lmbd=0.2)
    torch.manual_seed(0)
    config = ModelConfig("timm:resnet18", 5, "imagenet", {"convert": "stem", "lmbd": 0.3, "in_chans": 3}, "digits")
    model = config.build().eval()
    with torch.no_grad():
        for layer in csc_layers(model):
            layer.step_size.fill_(0.07)
    model.load_state_dict(model.state_dict())
    save_model(model, tmp_path / "m", config)
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["architecture"] == "timm:resnet18" and saved["model_args"]["convert"] == "stem"
    loaded = sd.load_model(tmp_path / "m")
    assert isinstance(loaded.conv1, CSCConv2d) and loaded.conv1.lmbd == 0.3
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_list_of_module_names_is_stored_and_rebuilt(tmp_path: Path) -> None:
    """``convert`` as module names: config.json keeps the list, and ``load_model`` converts exactly those."""
    from sdnet_cli.engine.setup import model_config
    from sdnet_cli.config import resolve_config
    from sdnet_cli.data.datasets import dataset_info

    cfg = resolve_config(None, {}, ["model.name=torchvision:resnet18", "model.convert=conv1, layer1.0.conv2",
                                       "data.image_size=32"])
    config = model_config(cfg, dataset_info("digits"), 10)
    assert config.model_args["convert"] == ["conv1", "layer1.0.conv2"]
    model = config.build().eval()
    save_model(model, tmp_path / "m", config)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_args"]["convert"] == ["conv1", "layer1.0.conv2"]
    loaded = sd.load_model(tmp_path / "m")
    assert sorted(n for n, m in loaded.named_modules() if isinstance(m, CSCConv2d)) == ["conv1", "layer1.0.conv2"]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_and_pull_round_trip_bit_exactly(tmp_path: Path, capsys, monkeypatch) -> None:
    torch.manual_seed(0)
    config = ModelConfig("torchvision:resnet18", 10, "imagenet", {"convert": "stem"}, "digits", [0.3] * 3, [0.3] * 3)
    model = config.build().eval()
    model.conv1.step_size.fill_(0.05)
    model.load_state_dict(model.state_dict())
    save_model(model, tmp_path / "m", config)
    code, _, err = run_cli(capsys, "export", tmp_path / "m", "--output", tmp_path / "export")
    assert code == 0, err
    hub = FakeHub().start()
    try:
        hub.add_folder("org/resnet18-csc-stem", tmp_path / "export")
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        code, out, err = run_cli(capsys, "pull-weights", "org/resnet18-csc-stem", "--json")
        assert code == 0, err
        pulled = Path(json.loads(out)["path"])
        assert _sha(pulled / "model.safetensors") == _sha(tmp_path / "export" / "model.safetensors")
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            assert torch.equal(sd.load_model(pulled)(x), model(x))
            assert torch.equal(sd.load_model("org/resnet18-csc-stem")(x), model(x))
    finally:
        hub.stop()


@pytest.mark.slow
def test_converted_torchvision_resnet18_trains_and_runs_the_tool_chain(tmp_path: Path, capsys) -> None:
    """``sdnet train --model torchvision:resnet18 --set model.convert=stem`` on digits (32×32, 4 epochs) ≥ 95 %."""
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--model", "torchvision:resnet18", "--set", "model.convert=stem",
                             "--epochs", "4", "--output", run, "--set", "train.threads=1",
                             "--set", "data.image_size=32", "--json")
    assert code == 0, err
    best = json.loads((run / "best" / "config.json").read_text())
    assert best["architecture"] == "torchvision:resnet18" and best["model_args"]["convert"] == "stem"
    assert best["metrics"]["top1"] >= 95.0
    code, _, err = run_cli(capsys, "robust", run, "--corruptions", "noise", "--severities", "3", "--lambdas", "0.1,0.5",
                           "--output", tmp_path / "robust")
    assert code == 0, err
    code, _, err = run_cli(capsys, "visualize", run, "--what", "dictionary,sparsity,convergence,lambda",
                           "--output", tmp_path / "viz")
    assert code == 0, err
    assert {"dictionary.png", "sparsity.png", "convergence.png", "lambda.png"} <= {p.name for p in (tmp_path / "viz").iterdir()}
    code, _, err = run_cli(capsys, "export", run, "--output", tmp_path / "export")
    assert code == 0, err
    src, dst = load_file(run / "best" / "model.safetensors"), load_file(tmp_path / "export" / "model.safetensors")
    assert src.keys() == dst.keys()
    assert [k for k in src if not (torch.equal(src[k], dst[k]) and src[k].dtype == dst[k].dtype)] == []

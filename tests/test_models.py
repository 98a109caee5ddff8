"""Registry models: architectures, parameter counts, forward/backward, model directories."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import sdnet_cli as sd
from sdnet_cli.layers import CSCConv2d
from sdnet_cli.models.files import ModelConfig, load_model_dir, save_model


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_list_models() -> None:
    assert sd.list_models() == ["resnet18", "resnet34", "sdnet18", "sdnet18_all", "sdnet34", "sdnet34_all"]


@pytest.mark.parametrize(
    "name,num_classes,stem_type,expected",
    [
        ("sdnet18", 10, "cifar", 11_173_962),
        ("sdnet18", 100, "cifar", 11_220_132),
        ("sdnet18", 1000, "imagenet", 11_689_512),
        ("sdnet34", 10, "cifar", 21_282_122),
        ("resnet18", 10, "cifar", 11_173_962),
        ("sdnet18_all", 10, "cifar", 11_173_962),
    ],
)
def test_parameter_counts(name: str, num_classes: int, stem_type: str, expected: int) -> None:
    assert n_params(sd.create_model(name, num_classes=num_classes, stem_type=stem_type)) == expected


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "sdnet18", "sdnet34", "sdnet18_all", "sdnet34_all"])
@pytest.mark.parametrize("stem_type,size", [("cifar", 8), ("imagenet", 32)])
def test_forward_backward(name: str, stem_type: str, size: int) -> None:
    torch.manual_seed(0)
    m = sd.create_model(name, num_classes=7, stem_type=stem_type)
    x = torch.randn(2, 3, size, size)
    out = m(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    m.eval()
    assert torch.isfinite(m(x)).all()


def test_architecture_structure() -> None:
    s18 = sd.create_model("sdnet18", num_classes=10)
    assert isinstance(s18.layer0[0], CSCConv2d) and len(s18.layer0) == 2  # CSC + BN, no ReLU
    assert sum(isinstance(m, CSCConv2d) for m in s18.modules()) == 1
    assert s18.layer1[0].relu_mid  # ordinary blocks keep their ReLU
    r18 = sd.create_model("resnet18", num_classes=10)
    assert isinstance(r18.layer0[2], nn.ReLU)
    all_ = sd.create_model("sdnet18_all", num_classes=10, shortcut=False)
    assert sum(isinstance(m, CSCConv2d) for m in all_.modules()) == 17
    assert all(b.shortcut is None and not b.relu_mid for s in all_.stages()[1:] for b in s)
    all_sc = sd.create_model("sdnet18_all", num_classes=10)
    assert isinstance(all_sc.layer2[0].shortcut[0], nn.Conv2d)  # 1x1 projections stay ordinary convs
    im_all = sd.create_model("sdnet18_all", num_classes=1000, stem_type="imagenet")
    assert isinstance(im_all.layer0[2], CSCConv2d) and im_all.layer0[2].stride == 2  # CSC replaces the maxpool
    im = sd.create_model("sdnet18", num_classes=1000, stem_type="imagenet")
    assert isinstance(im.layer0[2], nn.MaxPool2d) and im.layer0[0].kernel_size == 7


def test_no_shortcut_block_is_plain_composition() -> None:
    torch.manual_seed(0)
    m = sd.create_model("sdnet18_all", num_classes=10, shortcut=False).eval()
    x = torch.randn(2, 3, 8, 8)
    m(x)
    b = m.layer1[0]
    h = m.layer0(x)
    assert torch.allclose(b(h), b.bn2(b.conv2(b.bn1(b.conv1(h)))))


def test_csc_options_reach_every_layer() -> None:
    m = sd.create_model("sdnet18_all", num_classes=10, lmbd=0.3, n_steps=3, mu=0.1, non_negative=False)
    layers = [x for x in m.modules() if isinstance(x, CSCConv2d)]
    assert all((lay.lmbd, lay.n_steps, lay.mu, lay.non_negative) == (0.3, 3, 0.1, False) for lay in layers)


def test_bad_model_arguments() -> None:
    with pytest.raises(ValueError, match="valid: resnet18, resnet34, sdnet18"):
        sd.create_model("sdnet19")
    with pytest.raises(ValueError, match="did you mean 'sdnet18'"):
        sd.create_model("sdnet-18")
    with pytest.raises(ValueError, match="only apply to SDNet"):
        sd.create_model("resnet18", lmbd=0.2)
    with pytest.raises(ValueError, match="unknown stem_type"):
        sd.create_model("sdnet18", stem_type="mnist")
    with pytest.raises(ValueError, match="_all models only"):
        sd.create_model("sdnet18", shortcut=False)


def test_in_chans() -> None:
    m = sd.create_model("sdnet18", num_classes=10, in_chans=1)
    assert m(torch.randn(2, 1, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet18", "sdnet18", "sdnet18_all"])
def test_width_scales_every_stage(name: str) -> None:
    """``width`` w: stage i has w·2^i channels; the parameter count is the default model's rebuilt by hand at that
    width (convs scale with w², BatchNorms and the classifier's input with w)."""
    m = sd.create_model(name, num_classes=10, width=16)
    assert [c.out_channels for c in m.modules() if isinstance(c, (nn.Conv2d, CSCConv2d))][0] == 16
    assert m.linear.in_features == 128
    assert m(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    convs = sum(p.numel() for c in m.modules() if isinstance(c, (nn.Conv2d, CSCConv2d)) for p in c.parameters())
    full = sd.create_model(name, num_classes=10)
    full_convs = sum(p.numel() for c in full.modules() if isinstance(c, (nn.Conv2d, CSCConv2d)) for p in c.parameters())
    stem = 3 * 64 * 9  # the stem's input side does not scale
    assert convs - 3 * 16 * 9 == (full_convs - stem) // 16
    assert sd.create_model(name, num_classes=10, width=64).state_dict().keys() == full.state_dict().keys()
    from sdnet_cli.config import Config
    from sdnet_cli.models.resnet import DEFAULT_WIDTH

    assert Config().model.width == DEFAULT_WIDTH == 64  # the config default is the builders' default


def test_model_directory_round_trip_is_bit_exact(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig("sdnet18_all", 10, "cifar", {"shortcut": False, "lmbd": 0.2}, "digits", [0.5] * 3, [0.25] * 3,
                      {"top1": 0.9})
    m = cfg.build().eval()
    x = torch.randn(3, 3, 16, 16)
    ref = m(x)
    save_model(m, tmp_path / "m", cfg)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    conf = json.loads((tmp_path / "m" / "config.json").read_text())
    assert conf["architecture"] == "sdnet18_all" and conf["model_args"] == {"shortcut": False, "lmbd": 0.2}
    assert conf["mean"] == [0.5] * 3 and conf["metrics"] == {"top1": 0.9}
    loaded = sd.load_model(tmp_path / "m")
    assert not loaded.training
    assert torch.equal(loaded(x), ref)
    loaded2, cfg2 = load_model_dir(tmp_path / "m")
    assert cfg2 == cfg


def test_strict_load_names_bad_keys(tmp_path) -> None:
    cfg = ModelConfig("sdnet18", 10)
    save_model(cfg.build(), tmp_path / "m", cfg)
    (tmp_path / "m" / "config.json").write_text(json.dumps({"architecture": "sdnet18_all", "num_classes": 10}))
    with pytest.raises(ValueError, match=r"missing keys .*layer1\.0\.conv1\.step_size"):
        sd.load_model(tmp_path / "m")


def test_load_model_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no model"):
        sd.load_model(tmp_path)
    cfg = ModelConfig("sdnet18", 10)
    save_model(cfg.build(), tmp_path / "m", cfg)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        sd.load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid sdnet config.json"):
        sd.load_model(tmp_path / "m")


def test_run_dir_resolves_to_best(tmp_path) -> None:
    cfg = ModelConfig("sdnet18", 10)
    torch.manual_seed(1)
    save_model(cfg.build(), tmp_path / "run" / "last", cfg)
    torch.manual_seed(2)
    best = cfg.build()
    save_model(best, tmp_path / "run" / "best", cfg)
    loaded = sd.load_model(tmp_path / "run")
    assert torch.equal(loaded.linear.weight, best.linear.weight)

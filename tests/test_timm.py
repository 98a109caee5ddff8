"""sdnet models inside timm: the registry, equality with ``sdnet_cli.create_model``, ``hf-hub:`` and ``local-dir:``
loading (stem_type and every model argument from config.json, cifar and imagenet).

The ``hf-hub:`` test runs timm in a child process with ``HF_ENDPOINT`` pointing at the local stand-in Hub
(tests/hub_server.py), as a user would run it: huggingface_hub reads the endpoint when it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

import sdnet_cli as sd
import sdnet_cli.timm  # noqa: F401 - registers the sdnet models with timm
from hub_server import FakeHub, run_cli
from sdnet_cli.layers import csc_layers
from sdnet_cli.hub.exporter import ExportOptions, export
from sdnet_cli.models.files import ModelConfig, save_model

REPO = "org/sdnet18-imagenet-stem"


def test_registered_names() -> None:
    assert timm.list_models("sdnet*") == ["sdnet18", "sdnet18_all", "sdnet34", "sdnet34_all"]
    assert "resnet18" in timm.list_models("resnet18")  # timm's own resnet18 is untouched
    assert type(timm.create_model("resnet18")).__module__.startswith("timm.")


@pytest.mark.parametrize("name,kwargs", [("sdnet18", {}), ("sdnet18_all", {"shortcut": False, "lmbd": 0.2})])
def test_timm_model_equals_ours(name: str, kwargs: dict) -> None:
    ours = sd.create_model(name, num_classes=10, **kwargs).eval()
    theirs = timm.create_model(name, num_classes=10, **kwargs).eval()
    assert theirs.num_classes == 10 and theirs.pretrained_cfg["first_conv"] == "layer0.0"
    own, other = ours.state_dict(), theirs.state_dict()
    assert list(own) == list(other) and all(own[k].shape == other[k].shape for k in own)
    assert [type(m) for m in ours.modules()] == [type(m) for m in theirs.modules()]
    with torch.no_grad():
        for layer in csc_layers(ours):
            layer.step_size.fill_(0.1)
    ours.load_state_dict(ours.state_dict())  # stored step sizes (eval uses them as stored)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


CHILD = """
import json, sys, torch, timm
import sdnet_cli.timm
model = timm.create_model("hf-hub:%s", pretrained=True).eval()
x = torch.load(sys.argv[1])
with torch.no_grad():
    state = {k: v.tolist() for k, v in model.state_dict().items()}
    print(json.dumps({"logits": model(x).tolist(), "num_classes": model.num_classes, "state": state,
                      "input_size": list(model.pretrained_cfg["input_size"]),
                      "stem_kernel": list(model.layer0[0].kernel_size) if isinstance(model.layer0[0].kernel_size, tuple)
                      else model.layer0[0].kernel_size}))
"""


def _saved_model(directory: Path, stem_type: str, size: int, **model_args) -> torch.nn.Module:
    """A 7-class sdnet18 with distinct stored step sizes (as in a checkpoint) saved to ``directory``; eval mode."""
    torch.manual_seed(0)
    config = ModelConfig("sdnet18", 7, stem_type, {"lmbd": 0.2, **model_args}, "digits", [0.3] * 3, [0.3] * 3,
                         {"image_size": size})
    model = config.build().eval()
    with torch.no_grad():
        for i, layer in enumerate(csc_layers(model)):
            layer.step_size.fill_(0.05 + 0.01 * i)
    model.load_state_dict(model.state_dict())  # stored step sizes, as in a checkpoint
    save_model(model, directory, config)
    return model


def test_timm_loads_an_exported_model_from_the_hub(tmp_path: Path, capsys) -> None:
    model = _saved_model(tmp_path / "model", "imagenet", 64)
    code, _, err = run_cli(capsys, "export", tmp_path / "model", "--output", tmp_path / "export")
    assert code == 0, err
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["pretrained_cfg"]["input_size"] == [3, 64, 64] and exported["stem_type"] == "imagenet" and "stem" not in exported
    assert sd.load_model(tmp_path / "export") is not None  # our reader ignores timm's key

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        want = model(x)
    hub = FakeHub().start()
    try:
        hub.add_folder(REPO, tmp_path / "export")
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache"),
               "HF_HUB_DISABLE_TELEMETRY": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        proc = subprocess.run([sys.executable, "-c", CHILD % REPO, str(tmp_path / "x.pt")], env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        hub.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["num_classes"] == 7 and out["input_size"] == [3, 64, 64] and out["stem_kernel"] == 7  # ImageNet stem
    own = model.state_dict()
    assert set(out["state"]) == set(own)
    assert all(torch.equal(torch.tensor(v, dtype=own[k].dtype).reshape(own[k].shape), own[k]) for k, v in out["state"].items())
    torch.testing.assert_close(torch.tensor(out["logits"]), want, rtol=1e-5, atol=1e-5)  # the child's thread count may differ
    assert hub.count("GET", "/lfs/") == 1  # the weights came through the Hub's CDN redirect


W = 16  # first-stage width of the local-dir models: stages 16, 32, 64, 128


@pytest.mark.parametrize("stem_type,size,kernel", [("cifar", 16, 3), ("imagenet", 64, 7)])
def test_local_dir_reads_the_stem_type_from_config(tmp_path: Path, stem_type: str, size: int, kernel: int) -> None:
    model = _saved_model(tmp_path / "model", stem_type, size, width=W)
    export(ExportOptions(source=str(tmp_path / "model"), output=tmp_path / "export"))

    loaded = timm.create_model(f"local-dir:{tmp_path / 'export'}", pretrained=True).eval()
    assert loaded.layer0[0].kernel_size in (kernel, (kernel, kernel)) and loaded.num_classes == 7
    assert float(loaded.layer0[0].lmbd) == 0.2 and loaded.num_features == 8 * W  # model_args from config.json
    assert tuple(loaded.pretrained_cfg["input_size"]) == (3, size, size)
    own = model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in loaded.state_dict().items()) and set(own) == set(loaded.state_dict())
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        net = timm.create_model(f"local-dir:{tmp_path / 'export'}", pretrained=True, features_only=True).eval()
        assert [o.shape[1] for o in net(x)] == [W, W, 2 * W, 4 * W, 8 * W]
    fresh = timm.create_model(f"local-dir:{tmp_path / 'export'}")  # the architecture without the weights
    assert fresh.layer0[0].kernel_size in (kernel, (kernel, kernel))
    tuned = timm.create_model(f"local-dir:{tmp_path / 'export'}", pretrained=True, num_classes=3)  # a new head
    assert tuned.linear.out_features == 3 and torch.equal(tuned.layer0[0].weight, model.layer0[0].weight)

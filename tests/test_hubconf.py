"""``torch.hub.load(repo_dir, "sdnet18", source="local")`` builds what ``sdnet_cli.create_model`` builds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn as nn

import sdnet_cli as sd
from sdnet_cli.layers import CSCConv2d

REPO = Path(__file__).resolve().parents[1]


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hub_lists_and_builds_registry_models() -> None:
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert all(callable(getattr(hubconf, n, None)) for n in [*sd.list_models(), "create_model", "load_model"])
    torch.manual_seed(0)
    theirs = torch.hub.load(str(REPO), "sdnet18", source="local", num_classes=10, lmbd=0.2)
    torch.manual_seed(0)
    ours = sd.create_model("sdnet18", num_classes=10, lmbd=0.2)
    assert _same(theirs, ours) and theirs.layer0[0].lmbd == 0.2 and theirs.linear.out_features == 10


def test_hub_create_model_takes_ecosystem_names(tmp_path: Path) -> None:
    model = torch.hub.load(str(REPO), "create_model", "torchvision:resnet18", source="local", num_classes=10,
                           convert="stem")
    assert isinstance(model.conv1, CSCConv2d) and model.fc.out_features == 10
    sd.save_model(model, tmp_path / "m", sd.ModelConfig("torchvision:resnet18", 10, "imagenet", {"convert": "stem"}))
    loaded = torch.hub.load(str(REPO), "load_model", str(tmp_path / "m"), source="local")
    assert _same(loaded, model)

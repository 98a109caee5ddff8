"""`sdnet train --model torchvision:NAME|timm:NAME` on a dataset smaller than the model takes: the model's minimum
size is chosen and said on stderr (issue 25 item 3); an explicit size below it, or a dataset used at its own size
only (CIFAR), is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from cli_helpers import run_cli
from sdnet_cli.config import resolve_config
from sdnet_cli.config_sizes import model_min_size
from sdnet_cli.models import create_model

TINY = ["--epochs", "1", "--batch-size", "16", "--set", "train.limit_batches=1", "--set", "train.threads=1",
        "--set", "train.tensorboard=false", "--set", "data.val_split=0", "--set", "train.eval_batch_size=512"]


def test_torchvision_model_on_digits_trains_at_its_minimum_size_and_says_so(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--model", "torchvision:resnet18", "--output", out, *TINY)
    assert code == 0, err
    assert ("torchvision:resnet18 takes images of at least 32x32; digits images are 8x8: training at "
            "data.image_size=32") in err
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["image_size"] == 32  # recorded: resume keeps it
    assert json.loads((out / "best" / "config.json").read_text())["metrics"]["image_size"] == 32


@pytest.mark.parametrize("model,least", [("torchvision:resnet18", 32), ("torchvision:inception_v3", 75),
                                         ("torchvision:vit_b_16", 224), ("timm:resnet18", 32),
                                         ("timm:vit_tiny_patch16_224", 224)])
def test_the_minimum_is_what_the_model_library_records(model: str, least: int) -> None:
    notes: list[str] = []
    cfg = resolve_config(None, {"model.name": model}, [], notes)
    assert cfg.data.image_size == least and len(notes) == 1 and f"at least {least}x{least}" in notes[0]


@pytest.mark.parametrize("model", ["torchvision:inception_v3", "timm:vit_tiny_patch16_224"])
def test_the_chosen_size_runs_and_a_smaller_one_does_not(model: str) -> None:
    """Independent of the recorded numbers: the model takes the chosen size, and fails a size below it."""
    least = model_min_size(model, "imagenet")
    net = create_model(model, num_classes=10).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, least, least)).shape == (1, 10)
        with pytest.raises(Exception):
            net(torch.zeros(1, 3, least - 1, least - 1) if "vit" in model else torch.zeros(1, 3, least // 2, least // 2))


def test_registry_models_and_explicit_sizes_are_left_alone() -> None:
    notes: list[str] = []
    assert resolve_config(None, {}, [], notes).data.image_size is None and notes == []  # sdnet18 takes 8x8
    cfg = resolve_config(None, {"model.name": "torchvision:resnet18"}, ["data.image_size=48"], notes)
    assert cfg.data.image_size == 48 and notes == []


@pytest.mark.parametrize("args,said", [
    (["--model", "torchvision:resnet18", "--set", "data.image_size=16"], "data.image_size must be an integer >= 32"),
    (["--model", "torchvision:vit_b_16", "--dataset", "cifar10", "--no-download"],
     "torchvision:vit_b_16 takes images of at least 224x224; cifar10 images are used at 32x32 only"),
], ids=["explicit-too-small", "cifar-not-resized"])
def test_sizes_the_model_cannot_take_are_one_line_exit_2(tmp_path: Path, capsys, args, said) -> None:
    code, _, err = run_cli(capsys, "train", "--output", tmp_path / "run", *args)
    assert code == 2 and said in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "run").exists()

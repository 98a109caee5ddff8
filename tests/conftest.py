"""Shared fixtures: small models trained on the bundled digits set (once per test session)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _train_digits(out: Path, arch: str, epochs: int, **model_args) -> Path:
    """Train ``arch`` on digits 16×16 with AdamW and save a model directory (a plain loop, independent of the engine)."""
    from sdnet_cli.data.digits import load_digits
    from sdnet_cli.models.files import ModelConfig, save_model

    torch.manual_seed(0)
    x, y = load_digits("train")
    xt, yt = load_digits("test")
    mean = float(x.mean() / 255.0)
    std = float((x / 255.0).std())

    def prep(a: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0 - mean) / std

    xs, ys, xts, yts = prep(x), torch.from_numpy(y), prep(xt), torch.from_numpy(yt)
    config = ModelConfig(arch, 10, "cifar", dict(model_args), "digits", [mean] * 3, [std] * 3)
    model = config.build()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(ys), generator=gen)
        for i in range(0, len(ys), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xts).argmax(1) == yts).float().mean().item()
    config.metrics = {"top1": acc}
    save_model(model, out, config)
    return out


@pytest.fixture(scope="session")
def digits_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory: sdnet18 trained 3 epochs on digits 16×16 (test accuracy in config.json metrics)."""
    return _train_digits(tmp_path_factory.mktemp("digits_sdnet18") / "model", "sdnet18", 3)


@pytest.fixture(scope="session")
def digits_all_noshortcut_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory: sdnet18_all without shortcut trained 2 epochs on digits 16×16."""
    return _train_digits(tmp_path_factory.mktemp("digits_all") / "model", "sdnet18_all", 2, shortcut=False)

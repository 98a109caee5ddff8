"""Shared fixtures: small models trained on the bundled digits set by the training engine (once per session,
i.e. once per pytest-xdist worker: ``pytest`` runs the suite in 2 worker processes, see pyproject.toml)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers share the machine's cores: one thread each (more OpenMP threads than cores is far slower),
    # also for the sdnet processes the tests start.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def _train_digits(out: Path, model: str, epochs: int, *overrides: str) -> Path:
    """``sdnet train`` with the digits defaults (8×8, AdamW, cosine) for ``epochs``; returns the best model directory."""
    from sdnet_cli.config import resolve_config
    from sdnet_cli.engine.train import train

    cfg = resolve_config(None, {"train.output": str(out)},
                         [f"model.name={model}", f"train.epochs={epochs}", "train.threads=1", *overrides])
    return Path(train(cfg).best)


@pytest.fixture(scope="session")
def digits_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory: `sdnet train` defaults (sdnet18, 5 epochs on digits 8×8) (metrics incl. top1 and image_size in config.json)."""
    return _train_digits(tmp_path_factory.mktemp("digits_sdnet18") / "run", "sdnet18", 5)


@pytest.fixture(scope="session")
def digits_narrow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory: sdnet18 at width 16 (1/16 of the FLOPs), 5 epochs on digits 8×8 (the attack suites'
    CI-sized model)."""
    return _train_digits(tmp_path_factory.mktemp("digits_narrow") / "run", "sdnet18", 5, "model.width=16")


@pytest.fixture(scope="session")
def digits_all_noshortcut_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory: sdnet18_all without shortcut trained 3 epochs on digits 8×8."""
    return _train_digits(tmp_path_factory.mktemp("digits_all") / "run", "sdnet18_all", 3, "model.shortcut=false")

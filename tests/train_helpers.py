"""Test helpers: tiny on-disk datasets in the real formats, and an in-process CLI runner.

- CIFAR-10/100: torchvision's ``cifar-10-batches-py`` / ``cifar-100-python`` pickled batches (torchvision's
  own on-disk format, written here with pickle for that reason only).
- ImageNet: an ImageFolder tree ``train/<class>/*.png`` and ``val/<class>/*.png``.
"""

from __future__ import annotations

import contextlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def _batch(rng: np.random.Generator, n: int, num_classes: int, label_key: str) -> dict:
    labels = (np.arange(n) % num_classes).tolist()
    data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    return {"data": data, label_key: labels, "filenames": [f"img{i}.png" for i in range(n)]}


def write_fake_cifar(root: Path, name: str = "cifar10", n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict:
    """Write a fake CIFAR in torchvision's layout under ``root``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        per = n_train // 5
        train_parts = []
        for i in range(5):
            b = _batch(rng, per, 10, "labels")
            train_parts.append(b)
            (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(b))
        test = _batch(rng, n_test, 10, "labels")
        (folder / "test_batch").write_bytes(pickle.dumps(test))
        (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
        out["train_data"] = np.concatenate([b["data"] for b in train_parts])
        out["train_labels"] = np.concatenate([b["labels"] for b in train_parts])
        out["test_data"], out["test_labels"] = test["data"], np.asarray(test["labels"])
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        train = _batch(rng, n_train, 100, "fine_labels")
        test = _batch(rng, n_test, 100, "fine_labels")
        (folder / "train").write_bytes(pickle.dumps(train))
        (folder / "test").write_bytes(pickle.dumps(test))
        (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
        out["train_data"], out["train_labels"] = train["data"], np.asarray(train["fine_labels"])
        out["test_data"], out["test_labels"] = test["data"], np.asarray(test["fine_labels"])
    for k in ("train_data", "test_data"):
        out[k] = out[k].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return out


def write_image_folder(root: Path, classes: int = 3, per_class: int = 4, size: int = 40, seed: int = 0) -> Path:
    """An ImageFolder tree with ``train/`` and ``val/`` (``per_class`` PNGs per class, ``size``×``size``+)."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, size=(size + 3 * i, size + 2 * c, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"img{i}.png")
    return root


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(args: list[str]) -> Result:
    """Run ``sdnet_cli.cli.app.main(args)`` in-process (with its error → exit-code mapping), capturing output."""
    from sdnet_cli.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


def tiny_cli_run(out: Path, steps: int) -> Path:
    """``sdnet train`` through the CLI's entry point: 1 epoch of ``steps`` steps (batch 16) of sdnet18 at width 8
    on digits 8×8, one thread, no TensorBoard; returns ``out`` (the run directory)."""
    from sdnet_cli.cli.app import main  # capsys is function-scoped: module fixtures call the entry point directly

    try:
        main(["train", "--output", str(out), "--epochs", "1", "--batch-size", "16", "--set",
              f"train.limit_batches={steps}", "--set", "data.image_size=8", "--set", "train.threads=1", "--set",
              "train.tensorboard=false", "--set", "model.width=8", "--set", "train.eval_batch_size=512"])
    except SystemExit as e:
        assert not e.code, e.code
    return out

"""README claims that no other test pins: the model table's parameter counts, the CPU thread split among local
ranks, TensorBoard scalars under tb/, class-balanced --num-images, the GRADIENT MASKING SUSPECTED banner and
`sdnet bench --recompute`."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from typer.testing import CliRunner

import sdnet_cli as sd

README = Path(__file__).resolve().parents[1] / "README.md"


def _model_table() -> list[tuple[list[str], list[int], list[int]]]:
    """``(names, CIFAR-10 counts, ImageNet counts)`` for each row of the README's model table."""
    rows = []
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and re.fullmatch(r"[\d,]+ / [\d,]+", cells[2]):
            counts = [[int(n.replace(",", "")) for n in c.split(" / ")] for c in cells[2:]]
            rows.append((re.findall(r"`([a-z0-9_]+)`", cells[0]), counts[0], counts[1]))
    return rows


def test_model_table_parameter_counts() -> None:
    rows = _model_table()
    assert {n for names, _, _ in rows for n in names} == set(sd.list_models())
    for names, cifar, imagenet in rows:
        for name, want_c, want_i in zip(names, cifar, imagenet):
            for stem_type, classes, want in (("cifar", 10, want_c), ("imagenet", 1000, want_i)):
                m = sd.create_model(name, num_classes=classes, stem_type=stem_type)
                assert sum(p.numel() for p in m.parameters()) == want, (name, stem_type)


def test_threads_split_among_local_ranks(monkeypatch) -> None:
    from sdnet_cli.engine import setup

    before = torch.get_num_threads()
    monkeypatch.setattr(setup.os, "cpu_count", lambda: 8)
    try:
        assert setup.set_threads(0, 2) == 4 and torch.get_num_threads() == 4
        assert setup.set_threads(0, 16) == 1  # at least one
        assert setup.set_threads(3, 2) == 3  # train.threads wins
    finally:
        torch.set_num_threads(before)


def test_tensorboard_scalars_under_tb(monkeypatch, tmp_path: Path) -> None:
    """With tensorboard importable, numeric values go to a SummaryWriter on <out>/tb (a recording stand-in here:
    tensorboard itself is an optional extra)."""
    from sdnet_cli.engine.logs import TensorBoard

    calls: list[tuple] = []

    class Writer:
        def __init__(self, directory: str, purge_step=None) -> None:
            calls.append(("open", directory, purge_step))

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            calls.append((tag, value, step))

        def close(self) -> None:
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    tb = TensorBoard(tmp_path / "tb", enabled=True, purge_step=7)
    tb.scalars({"loss": 0.5, "acc": 1, "flag": True, "name": "x"}, 8, prefix="train/")
    tb.close()
    assert calls == [("open", str(tmp_path / "tb"), 7), ("train/loss", 0.5, 8), ("train/acc", 1, 8), ("close",)]
    off = TensorBoard(tmp_path / "tb2", enabled=False)
    off.scalars({"loss": 1.0}, 1)
    assert len(calls) == 4


def test_num_images_are_class_balanced() -> None:
    from sdnet_cli.data.digits import load_digits
    from sdnet_cli.viz.data import balanced_indices

    _, labels = load_digits("test")
    idx = balanced_indices(labels, 25)
    assert len(set(idx.tolist())) == 25
    picked = labels[idx]
    assert picked[:10].tolist() == list(range(10)) and picked[10:20].tolist() == list(range(10))
    assert np.bincount(picked, minlength=10).tolist() == [3] * 5 + [2] * 5
    uneven = np.array([0, 0, 0, 0, 1, 2, 2])
    assert uneven[balanced_indices(uneven, 6)].tolist() == [0, 1, 2, 0, 2, 0]


def test_gradient_masking_banner() -> None:
    from sdnet_cli.cli.robust_tables import _print_checks

    check = {"mode": "fixed", "lambda": 0.1, "eps": 8 / 255, "passed": False, "notes": [],
             "checks": [{"name": "more steps", "passed": False, "detail": "[x] 40 % > 30 %"},
                        {"name": "black box", "passed": True, "detail": "ok"}]}
    for c in (check, {**check, "passed": True}):
        console = Console(record=True, width=200)
        _print_checks({"masking_checks": [c]}, console)
        text = console.export_text()
        assert ("GRADIENT MASKING SUSPECTED" in text) == (not c["passed"]), text
        assert "[x] 40 % > 30 %" in text  # user text is escaped, not eaten as markup


def test_bench_recompute_sets_the_layers() -> None:
    from sdnet_cli.bench.step import Workload, build_step
    from sdnet_cli.cli.app import app
    from sdnet_cli.layers import csc_layers

    for flag in (True, False):
        model, step, _ = build_step(Workload("sdnet18_all", batch_size=2, image_size=8, recompute=flag))
        layers = csc_layers(model)
        assert len(layers) == 17 and all(layer.recompute is flag for layer in layers)
    res = CliRunner().invoke(app, ["bench", "--models", "sdnet18", "-b", "2", "--image-size", "8", "--steps", "1",
                                   "--warmup", "0", "--no-memory", "--no-memory-reuse", "--recompute", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    assert rep["settings"]["recompute"] is True

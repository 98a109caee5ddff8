"""Learning-rate schedules and small engine pieces, against independent formulas."""

from __future__ import annotations

import math

import pytest
import torch

from sdnet_cli.engine.evaluate import topk_correct
from sdnet_cli.engine.schedule import lr_at
from train_helpers import invoke


def test_cosine_per_iteration():
    spe, ep, base = 10, 3, 0.1
    lrs = [lr_at(s, spe, ep, base, "cosine") for s in range(spe * ep)]
    assert lrs[0] == pytest.approx(base)
    assert lrs[15] == pytest.approx(base * 0.5 * (1 + math.cos(math.pi * 15 / 30)))
    assert all(a > b for a, b in zip(lrs, lrs[1:]))  # decreases every iteration, not every epoch


def test_step_schedule_and_warmup():
    lr = [lr_at(s, 5, 100, 0.1, "step", [30, 60, 90], 0.1) for s in (0, 149, 150, 299, 300, 450)]
    assert lr == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.0001])
    assert lr_at(0, 10, 5, 1.0, "cosine", warmup_epochs=1) == pytest.approx(0.1)
    assert lr_at(9, 10, 5, 1.0, "cosine", warmup_epochs=1) == pytest.approx(1.0)
    assert lr_at(10, 10, 5, 1.0, "cosine", warmup_epochs=1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        lr_at(0, 1, 1, 0.1, "linear")


def test_topk_correct():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    y = torch.tensor([2, 0])
    assert topk_correct(logits, y, 1).tolist() == [False, True]
    assert topk_correct(logits, y, 2).tolist() == [True, True]
    assert topk_correct(logits, y, 5).tolist() == [True, True]  # k capped at the class count


def test_resume_without_a_run_exits_2(tmp_path):
    r = invoke(["train", "--resume", "--output", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "cannot resume" in r.output

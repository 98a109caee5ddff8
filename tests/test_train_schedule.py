"""Learning-rate schedules and small engine pieces, against independent formulas."""

from __future__ import annotations

import math

import pytest
import torch

from sdnet_cli.engine.metrics_loop import topk_correct
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
    with pytest.raises(ValueError, match="unknown schedule 'linear'; valid: cosine, step, constant"):
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


def test_cosine_to_min_lr_is_torchs_cosine_annealing_stepped_every_iteration():
    """The official train.py: CosineAnnealingLR(optimizer, len(train_loader) * END_EPOCH, eta_min=1e-6), one
    scheduler step after every optimizer step (torch's recursive update; lr_at is its closed form)."""
    spe, epochs = 391, 3
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spe * epochs, eta_min=1e-6)
    ours = []
    for s in range(spe * epochs):
        ours.append((opt.param_groups[0]["lr"], lr_at(s, spe, epochs, 0.1, "cosine", min_lr=1e-6)))
        opt.step()
        sched.step()
    assert max(abs(a - b) / a for a, b in ours) < 1e-12
    assert ours[-1][1] > 1e-6 and lr_at(spe * epochs, spe, epochs, 0.1, "cosine", min_lr=1e-6) == pytest.approx(1e-6)
    assert lr_at(spe * epochs - 1, spe, epochs, 0.1, "cosine") < 1e-6  # min_lr 0 (the default) ends lower


def test_keep_last_batch_sampler():
    from sdnet_cli.engine.data import KeepLastBatchSampler
    from sdnet_cli.engine.distributed import ShardedBatchSampler, epoch_permutation

    keep = KeepLastBatchSampler(50_000, 128, seed=3)
    batches = list(keep)
    assert keep.batches_per_epoch() == len(batches) == 391 and len(batches[-1]) == 80  # CIFAR at batch 128
    assert sum(batches, []) == epoch_permutation(50_000, 3, 0).tolist()  # every image once, in the epoch's order
    assert ShardedBatchSampler(50_000, 128, seed=3).batches_per_epoch() == 390  # drop_last (the default)
    ranks = [list(KeepLastBatchSampler(100, 16, seed=5, rank=r, world=2)) for r in range(2)]
    assert [len(r) for r in ranks] == [7, 7] and [len(r[-1]) for r in ranks] == [2, 2]  # 4 left, 2 a rank
    assert list(KeepLastBatchSampler(100, 16, seed=5, rank=0, world=2))[:6] == list(ShardedBatchSampler(100, 16, 5, 0, 2))
    assert KeepLastBatchSampler(97, 16, seed=5).batches_per_epoch() == 6  # 1 left over: dropped (BatchNorm)
    assert KeepLastBatchSampler(100, 16, seed=5, limit=3).batches_per_epoch() == 3
    resumed = KeepLastBatchSampler(100, 16, seed=5)
    resumed.set_epoch(1, start=6)
    assert list(resumed) == [epoch_permutation(100, 5, 1)[96:].tolist()]


def test_cifar_presets_follow_the_official_schedule():
    from sdnet_cli.config import preset

    for name in ("cifar10", "cifar100"):
        o, t = preset(name).optim, preset(name).train
        assert (o.schedule, o.min_lr, t.drop_last, t.step_size) == ("cosine", 1e-6, False, "exact")
    assert preset("imagenet").train.drop_last is False
    assert (preset("digits").optim.min_lr, preset("digits").train.drop_last) == (0.0, True)

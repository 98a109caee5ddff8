"""torchrun with 2 CPU processes (gloo): identical weights on both ranks after every step, and the same
loss curve as one process with the same global batch.

Both runs see the same images in the same global batches (ShardedBatchSampler) with BatchNorm statistics
synchronised over the global batch (CPUSyncBatchNorm); only the floating-point summation order differs.
Tolerances: the losses of steps 1–2 within 1e-5 relative (measured ≤ 5e-7), of all 4 steps within 2e-3 (measured
≤ 2e-5 on one VM, 6.5e-4 at step 4 on a faster one, old and new code alike); final weights within 3e-3 absolute
(measured 8.7e-4 after 4 SGD steps — the same order as a single process run with 2 threads instead of 1,
2.8e-4: at 8×8 inputs layer4 is 1×1 and its BatchNorm over 16 values amplifies rounding).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from sdnet_cli.engine.distributed import ShardedBatchSampler

COMMON = ["--batch-size", "16", "--epochs", "1", "--set", "train.limit_batches=4", "--set", "model.sync_bn=true",
          "--set", "data.image_size=8", "--set", "train.threads=1", "--set", "train.tensorboard=false",
          "--set", "optim.name=sgd", "--lr", "0.01", "--seed", "3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_sharded_batches_make_up_the_single_process_batch():
    single = list(ShardedBatchSampler(100, 16, seed=5))
    ranks = [list(ShardedBatchSampler(100, 16, seed=5, rank=r, world=2)) for r in range(2)]
    assert len(single) == 6 and all(len(r) == 6 for r in ranks)
    for b, (a0, a1) in enumerate(zip(*ranks)):
        assert a0 + a1 == single[b] and len(a0) == 8
    s = ShardedBatchSampler(100, 16, seed=5, limit=4)
    s.set_epoch(1, start=2)
    assert len(s) == 2
    full = ShardedBatchSampler(100, 16, seed=5)
    full.set_epoch(1)
    assert list(s) == list(full)[2:4]
    with pytest.raises(ValueError, match="divisible"):
        ShardedBatchSampler(100, 15, seed=0, world=2)
    flat = np.concatenate(single)
    assert len(set(flat.tolist())) == len(flat)  # no image twice in an epoch


def _train_pair(tmp_path, name: str, *extra: str) -> tuple[list[float], list[float], float, str]:
    """Train with torchrun (2 ranks, ranks checked identical after every step) and in one process; returns both
    per-step losses, the largest weight difference and the DDP run's stdout."""
    ddp, single = tmp_path / f"ddp-{name}", tmp_path / f"single-{name}"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
                        "-m", "sdnet_cli", "train", "--output", str(ddp), *COMMON, *extra, "--set", "train.verify_ddp=true",
                        "--json"], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    stdout = r.stdout
    r = subprocess.run([sys.executable, "-m", "sdnet_cli", "train", "--output", str(single), *COMMON, *extra],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    la = [json.loads(x)["loss"] for x in (ddp / "steps.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (single / "steps.jsonl").read_text().splitlines()]
    wa, wb = load_file(str(ddp / "last" / "model.safetensors")), load_file(str(single / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    worst = max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa if wa[k].is_floating_point())
    assert len(list((ddp / "state").glob("ckpt-*.json"))) == 1  # one writer
    return la, lb, worst, stdout


def _weights(run) -> dict:
    """The trained parameters of a run's last model (buffers left out: BatchNorm statistics, step sizes)."""
    w = load_file(str(run / "last" / "model.safetensors"))
    skip = ("running_mean", "running_var", "num_batches_tracked", "step_size")
    return {k: v.double() for k, v in w.items() if v.is_floating_point() and not k.endswith(skip)}


def _distance(a: dict, b: dict) -> float:
    return sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5


@pytest.mark.slow
def test_torchrun_two_processes_match_single_process(tmp_path):
    # The gradient math alone: step sizes from the per-forward power iteration only (a smooth function of the weights).
    la, lb, worst, stdout = _train_pair(tmp_path, "math", "--set", "train.step_size_every=0")
    result = json.loads(stdout.strip().splitlines()[-1])  # rank 0 prints one object, rank 1 nothing
    assert result["steps"] == 4 and stdout.count('"output"') == 1
    assert len(la) == len(lb) == 4
    # Steps 1-2 (the forward, then the first averaged-gradient update) agree to rounding; later steps let the
    # rounding grow through the 1x1 BatchNorm (see the module docs), by how much depends on the machine's kernels.
    assert np.allclose(la[:2], lb[:2], rtol=1e-5, atol=0), (la, lb)
    assert np.allclose(la, lb, rtol=2e-3, atol=0), (la, lb)
    assert worst < 3e-3, worst
    # Relative to the training's own movement ‖w_single − w_init‖ (L2 over the parameters): the ranks' result is
    # within 10 % of it (measured 0.84 %); ranks that skip gradient averaging land 126 % away (measured by
    # replacing DistributedDataParallel with a plain wrapper), so a bound on the update's scale catches them.
    init = tmp_path / "init"
    r = subprocess.run([sys.executable, "-m", "sdnet_cli", "train", "--output", str(init), *COMMON,
                        "--set", "train.step_size_every=0", "--lr", "1e-30"], capture_output=True, text=True, env=ENV,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w0, wa, wb = (_weights(tmp_path / d) for d in ("init", "ddp-math", "single-math"))
    moved = _distance(wb, w0)
    assert moved > 0 and _distance(wa, wb) < 0.1 * moved, (_distance(wa, wb), moved)
    # With the engine's per-step Lanczos refresh (the default): ranks stay identical (verify_ddp); the 20-iteration
    # estimate depends on its warm vector at the ~1e-3 level, which lets rounding differences grow a little.
    la, lb, worst, _ = _train_pair(tmp_path, "default")
    assert np.allclose(la, lb, rtol=1e-2, atol=0), (la, lb)
    assert worst < 3e-2, worst

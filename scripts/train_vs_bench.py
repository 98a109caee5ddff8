"""The engine's training step against ``sdnet bench``'s train step of the same model, batch and size, in turns.

    python scripts/train_vs_bench.py --model sdnet18_all --batch-size 32 --image-size 224 --stem-type imagenet --rounds 30

Separate processes on a shared machine drift by ±10 % between runs, so the two steps take turns round by round
in one process (the order alternating), as ``sdnet bench``'s models do:

* **engine**: ``Trainer.step`` of a run set up by ``sdnet train``'s own code (``engine/train.py: _prepare``) on
  the next batch of the bundled digits (upscaled to the size, no augmentation, ``data.workers=0``), timed with
  the batch fetch as ``steps.jsonl``'s ``wall_s`` is. With ``--stem-type imagenet`` the run's model is rebuilt with
  the ImageNet stem (digits have the CIFAR one), as the bench builds it.
* **bench**: the step ``sdnet bench --mode train`` times (``bench/step.py: build_step``).

Both use SGD (lr 0.01, momentum 0.9, no weight decay) and the step-size keeper's steady-state schedule (the
engine's global step starts at the keeper's warm-up length, the bench's at the step after it). Prints the
paired median of engine / bench with its quartiles, the ratio of means and the engine's mean data wait, and
the same as one JSON line. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile

import torch

from sdnet_cli.bench.runner import paired_ratio
from sdnet_cli.bench.step import Workload, build_step
from sdnet_cli.bench.timing import interleaved_times
from sdnet_cli.config import resolve_config
from sdnet_cli.data.datasets import dataset_info
from sdnet_cli.engine import distributed as D
from sdnet_cli.engine.callbacks import Callbacks
from sdnet_cli.engine.data import timed_batches
from sdnet_cli.engine.setup import build_model, build_optimizer
from sdnet_cli.engine.step_sizes import WARMUP_STEPS
from sdnet_cli.engine.train import _prepare
from sdnet_cli.engine.trainer import Trainer, empty_meter


def engine_trainer(args: argparse.Namespace, out: str) -> Trainer:
    """A :class:`Trainer` of a digits run with the bench's optimizer, at the keeper's steady state."""
    cfg = resolve_config(None, {"train.output": out}, [
        f"model.name={args.model}", f"train.batch_size={args.batch_size}", f"data.image_size={args.image_size}",
        "data.augment=false", "data.workers=0", "optim.name=sgd", "optim.lr=0.01", "optim.momentum=0.9",
        "optim.weight_decay=0", "optim.schedule=constant", "train.epochs=1000", "train.tensorboard=false",
        "train.device=cpu", f"train.threads={torch.get_num_threads()}"])
    setup = _prepare(cfg, dataset_info(cfg.data.dataset), D.DistInfo(), False, False)
    if args.stem_type != setup.mcfg.stem_type:
        mcfg = dataclasses.replace(setup.mcfg, stem_type=args.stem_type)
        model = build_model(mcfg, cfg, setup.dinfo, setup.device)
        setup = dataclasses.replace(setup, mcfg=mcfg, model=model, optimizer=build_optimizer(cfg, model))
    trainer = Trainer(setup, Callbacks())
    trainer.loop.global_step = WARMUP_STEPS
    trainer.meter = empty_meter()  # as run_epoch starts it
    trainer.net.train()
    return trainer


def batches(trainer: Trainer):  # noqa: ANN201
    """The run's training batches, epoch after epoch."""
    epoch = 0
    while True:
        yield from timed_batches(trainer.s.data.epoch_loader(epoch, 0))
        epoch += 1


def measure(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = engine_trainer(args, f"{tmp}/run")
        try:
            feed, waits = batches(trainer), []

            def engine() -> None:
                x, y, data_s = next(feed)
                trainer.step(x, y, data_s)
                waits.append(data_s)

            bench_step = build_step(Workload(model=args.model, batch_size=args.batch_size, image_size=args.image_size,
                                             stem_type=args.stem_type))[1]
            t_engine, t_bench = interleaved_times([engine, bench_step], args.rounds, args.warmup, torch.device("cpu"))
            return summary(t_engine, t_bench, waits[args.warmup:])
        finally:
            if trainer.s.run is not None:
                trainer.s.run.close()


def summary(t_engine: list[float], t_bench: list[float], waits: list[float]) -> dict:
    """Medians, the paired median of engine / bench with its quartiles, the ratio of means, the mean data wait."""
    q = statistics.quantiles([a / b for a, b in zip(t_engine, t_bench)], n=4) if len(t_engine) >= 2 else None
    paired = paired_ratio(t_engine, t_bench)
    return {"rounds": len(t_engine), "engine_ms": 1000 * statistics.median(t_engine),
            "bench_ms": 1000 * statistics.median(t_bench), "paired_median": paired,
            "quartiles": [q[0], q[2]] if q else [paired, paired],
            "ratio_of_means": statistics.fmean(t_engine) / statistics.fmean(t_bench),
            "data_wait_ms": 1000 * statistics.fmean(waits)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sdnet18")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--stem-type", default="cifar", choices=["cifar", "imagenet"])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    args = p.parse_args()
    r = measure(args)
    print(f"{args.model} batch {args.batch_size} {args.image_size}x{args.image_size} ({args.stem_type} stem), "
          f"{r['rounds']} rounds: engine {r['engine_ms']:.0f} ms, bench {r['bench_ms']:.0f} ms; engine / bench "
          f"paired median {r['paired_median']:.3f} (quartiles {r['quartiles'][0]:.3f}-{r['quartiles'][1]:.3f}), "
          f"ratio of means {r['ratio_of_means']:.3f}, data wait {r['data_wait_ms']:.1f} ms")
    print(json.dumps({"model": args.model, "batch_size": args.batch_size, "image_size": args.image_size,
                      "stem_type": args.stem_type, **r}))


if __name__ == "__main__":
    main()

"""The training loop: ``train(config) -> TrainResult`` (what ``sdnet train`` and the tests call).

One step: learning rate of the global step (schedule.py), forward (CSC layers renormalise their atoms and
refresh their step size by a warm-started power iteration), cross-entropy (optional label smoothing),
backward, optimizer step. The step's loss is all-reduced across ranks; a non-finite loss stops the run
before the weights are touched. Each epoch ends with an evaluation on the test split, ``last/`` (and
``best/`` when top-1 improved), a training state, ``metrics.jsonl`` and TensorBoard scalars. Only rank 0
writes. Ctrl-C (SIGINT) stops at the next step boundary, saves a resumable state and raises
:class:`TrainingInterrupted`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from ..config import Config
from ..data.datasets import build_dataset, dataset_info
from ..models.files import atomic_write_bytes, save_model
from . import distributed as D
from .callbacks import Callbacks
from .evaluate import evaluate, topk_correct
from .rundir import StepLog, TensorBoard, default_output, prepare_output, write_jsonl
from .schedule import lr_at, set_lr
from .setup import (build_optimizer, check_training_config, make_autocast, model_config, resolve_device,
                    seed_everything, set_threads)
from .state import LoopState, load_state, save_state
from .step_sizes import StepSizeKeeper


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the run stopped and kept its last good checkpoint."""


class TrainingInterrupted(Exception):
    """Ctrl-C: a resumable state was saved (``self.output``)."""

    def __init__(self, message: str, output: Path) -> None:
        super().__init__(message)
        self.output = output


@dataclass
class TrainResult:
    """What a finished run reports (also ``sdnet train --json``)."""

    output: str
    best: str
    last: str
    dataset: str
    model: str
    epochs: int
    steps: int
    best_epoch: int | None
    best_top1: float | None
    top1: float
    top5: float
    loss: float
    train_loss: float
    seconds: float
    resumed: bool
    history: list[dict[str, Any]] = field(default_factory=list)


def criterion(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Mean cross-entropy of a batch (module-level so tests can replace it)."""
    return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)


class _StopFlag:
    """SIGINT → a flag checked at step boundaries (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *_: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _loaders(cfg: Config, dinfo: D.DistInfo, device: torch.device) -> tuple[Any, Any, D.ShardedBatchSampler, Any]:
    d, t = cfg.data, cfg.train
    download = d.download and dinfo.is_main
    kw = dict(root=d.root, download=download, image_size=d.image_size, seed=t.seed, skip_bad_images=d.skip_bad_images,
              in_chans=d.in_chans)
    if dinfo.is_main:
        train_ds = build_dataset(d.dataset, "train", train_transform=d.augment, **kw)
    if dinfo.enabled:
        dist.barrier()  # rank 0 downloads first
    if not dinfo.is_main:
        kw["download"] = False
        train_ds = build_dataset(d.dataset, "train", train_transform=d.augment, **kw)
    test_ds = build_dataset(d.dataset, "test", train_transform=False, **{**kw, "download": False})
    sampler = D.ShardedBatchSampler(len(train_ds), t.batch_size, t.seed, dinfo.rank, dinfo.world, t.limit_batches)
    eval_set = Subset(test_ds, range(dinfo.rank, len(test_ds), dinfo.world)) if dinfo.enabled else test_ds
    pin = device.type == "cuda"
    test_loader = DataLoader(eval_set, batch_size=t.eval_batch_size, shuffle=False, num_workers=d.workers,
                             pin_memory=pin)
    return train_ds, test_loader, sampler, pin


def _unwrap_error(e: Exception) -> Exception:
    """DataLoader workers re-raise as 'Caught ValueError in DataLoader worker…'; keep the original line."""
    text = str(e)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
        return type(e)(last.split(": ", 1)[1] if ": " in last else last)
    return e


def train(cfg: Config, *, resume: bool = False, force: bool = False, callbacks: Callbacks | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` into ``cfg.train.output`` (default ``runs/<dataset>-<model>-<time>``).

    ``resume`` continues the newest complete state in ``<output>/state`` exactly; ``force`` overwrites an
    existing run. Raises ``ValueError``/``FileNotFoundError`` for bad input, :class:`NonFiniteLossError`,
    :class:`TrainingInterrupted`.
    """
    cb = callbacks or Callbacks()
    check_training_config(cfg)
    info = dataset_info(cfg.data.dataset)
    mcfg = model_config(cfg, info)
    device = resolve_device(cfg.train.device, 0)
    dinfo = D.init_distributed(device.type)
    owns_group = dinfo.enabled
    try:
        return _train(cfg, info, mcfg, dinfo, resume, force, cb)
    finally:
        if owns_group:
            D.shutdown_distributed()


def _train(cfg: Config, info: Any, mcfg: Any, dinfo: D.DistInfo, resume: bool, force: bool, cb: Callbacks) -> TrainResult:
    t, o = cfg.train, cfg.optim
    device = resolve_device(t.device, dinfo.local_rank)
    threads = set_threads(t.threads, dinfo.local_world) if device.type == "cpu" else torch.get_num_threads()
    out = Path(t.output) if t.output else None
    created = False
    if dinfo.is_main:
        target = out or default_output(info.name, cfg.model.name)
        created = not target.exists()
        out = prepare_output(target, resume, force)
    if dinfo.enabled:
        box = [str(out) if out else None]
        dist.broadcast_object_list(box, src=0)
        out = Path(box[0])
    assert out is not None
    image_size = int(cfg.data.image_size or info.image_size)
    main = dinfo.is_main

    seed_everything(t.seed)
    try:
        train_ds, test_loader, sampler, pin = _loaders(cfg, dinfo, device)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # bad data: leave no empty run directory behind
        raise
    num_classes = int(train_ds.num_classes)
    mcfg = model_config(cfg, info, num_classes)
    seed_everything(t.seed)
    model = mcfg.build().to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dinfo.enabled and cfg.model.sync_bn:
        model = D.convert_sync_batchnorm(model, device.type)
    optimizer = build_optimizer(cfg, model)
    autocast, scaler = make_autocast(cfg, device)
    loop = LoopState()
    if resume:
        loop, _ = load_state(out / "state", model, optimizer, scaler)
    keeper = StepSizeKeeper(model, t.step_size_every)  # re-converges the CSC step sizes between steps
    if main:
        atomic_write_bytes(out / "config.yaml", cfg.to_yaml().encode())
    net: nn.Module = model
    if dinfo.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if t.compile:
        net = torch.compile(net)

    steps_per_epoch = sampler.batches_per_epoch()
    history = list(loop.history)
    steplog = StepLog(out / "steps.jsonl", loop.global_step if resume else None) if main else None
    tb = TensorBoard(out / "tb", t.tensorboard and main, purge_step=loop.global_step if resume else None)
    cb.on_start({"output": str(out), "device": str(device), "threads": threads, "world": dinfo.world,
                 "dataset": info.name, "model": cfg.model.name, "epochs": t.epochs, "steps_per_epoch": steps_per_epoch,
                 "train_images": len(train_ds), "image_size": image_size, "resumed_at": (loop.epoch, loop.batch) if resume else None,
                 "is_main": main})
    t_start = time.perf_counter()

    def save_resumable() -> None:
        if main:
            loop.history = history
            save_state(out / "state", model, optimizer, loop, scaler, {"config": cfg.to_dict()})

    try:
        with _StopFlag() as stop:
            while loop.epoch < t.epochs:
                epoch = loop.epoch
                sampler.set_epoch(epoch, loop.batch)
                train_ds.set_epoch(epoch)
                loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=cfg.data.workers, pin_memory=pin)
                m = loop.meter or {"loss": 0.0, "correct": 0.0, "n": 0.0, "seconds": 0.0}
                cb.on_epoch_start(epoch, steps_per_epoch, loop.batch)
                net.train()
                t_epoch = time.perf_counter()
                it = iter(loader)
                while True:
                    try:
                        x, y = next(it)
                    except StopIteration:
                        break
                    except (ValueError, FileNotFoundError, RuntimeError) as e:
                        raise _unwrap_error(e) from None
                    x = x.to(device, non_blocking=True)
                    if t.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    y = y.to(device, non_blocking=True)
                    lr = lr_at(loop.global_step, steps_per_epoch, t.epochs, o.lr, o.schedule, o.milestones,
                               o.gamma, o.warmup_epochs)
                    set_lr(optimizer, lr)
                    with autocast() if autocast is not None else contextlib.nullcontext():
                        logits = net(x)
                    loss = criterion(logits, y, o.label_smoothing)
                    stats = torch.tensor([loss.detach().float().item() * len(y),
                                          float(topk_correct(logits.detach(), y, 1).sum()), float(len(y)),
                                          float(stop.requested)], dtype=torch.float64, device=device)
                    stats = D.all_reduce_sum(stats).cpu()
                    g_loss = float(stats[0] / stats[2])
                    if not math.isfinite(g_loss):
                        raise NonFiniteLossError(
                            f"loss is {g_loss} at step {loop.global_step + 1} (epoch {epoch + 1}, batch {loop.batch + 1}); "
                            f"stopped. The last good checkpoint is kept in {out} "
                            f"({'epoch ' + str(loop.epoch) if history else 'none yet'}); lower --lr or check the data")
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        if o.grad_clip > 0:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        if o.grad_clip > 0:
                            nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
                        optimizer.step()
                    loop.global_step += 1
                    loop.batch += 1
                    keeper.after_step(loop.global_step)
                    m["loss"] += float(stats[0])
                    m["correct"] += float(stats[1])
                    m["n"] += float(stats[2])
                    m["seconds"] += time.perf_counter() - t_epoch
                    t_epoch = time.perf_counter()
                    loop.meter = m
                    if t.verify_ddp:
                        D.check_ranks_identical(model, loop.global_step)
                    row = {"step": loop.global_step, "epoch": epoch + 1, "batch": loop.batch, "loss": g_loss,
                           "top1": 100.0 * float(stats[1] / stats[2]), "lr": lr}
                    if steplog is not None:
                        steplog.write(row)
                    tb.scalars({"loss": g_loss, "lr": lr}, loop.global_step, "train_step/")
                    cb.on_batch({**row, "images_per_s": m["n"] / max(m["seconds"], 1e-9)})
                    if stats[3] > 0:
                        save_resumable()
                        raise TrainingInterrupted(
                            f"interrupted at step {loop.global_step}; state saved in {out / 'state'}", out)
                    if t.checkpoint_every and loop.global_step % t.checkpoint_every == 0 and loop.batch < steps_per_epoch:
                        save_resumable()
                # -- end of epoch --------------------------------------------------------------------
                keeper.refresh_all()  # unit atoms and a converged step size for what is evaluated and saved
                cb.on_eval_start(len(test_loader.dataset))
                ev = evaluate(model, test_loader, num_classes, device, autocast, t.channels_last)
                row = {"epoch": epoch + 1, "step": loop.global_step, "train_loss": m["loss"] / max(m["n"], 1),
                       "train_top1": 100.0 * m["correct"] / max(m["n"], 1), "val_loss": ev["loss"],
                       "val_top1": ev["top1"], "val_top5": ev["top5"], "lr": lr_at(loop.global_step - 1, steps_per_epoch,
                       t.epochs, o.lr, o.schedule, o.milestones, o.gamma, o.warmup_epochs),
                       "time": m["seconds"], "images_per_s": m["n"] / max(m["seconds"], 1e-9)}
                history.append(row)
                improved = loop.best_metric is None or ev["top1"] > loop.best_metric
                if improved:
                    loop.best_metric, loop.best_epoch = ev["top1"], epoch + 1
                loop.epoch, loop.batch, loop.meter = epoch + 1, 0, {}
                if main:
                    mcfg.metrics = {"epoch": epoch + 1, "split": "test", "top1": ev["top1"], "top5": ev["top5"],
                                    "loss": ev["loss"], "train_loss": row["train_loss"], "train_top1": row["train_top1"],
                                    "image_size": image_size, "seed": t.seed}
                    save_model(model, out / "last", mcfg)
                    if improved:
                        save_model(model, out / "best", mcfg)
                    save_resumable()
                    write_jsonl(out / "metrics.jsonl", history)
                    tb.scalars({k: v for k, v in row.items() if k not in ("epoch", "step")}, epoch + 1, "epoch/")
                cb.on_epoch_end({**row, "best": improved})
    finally:
        if steplog is not None:
            steplog.close()
        tb.close()

    last = history[-1] if history else {}
    result = TrainResult(
        output=str(out), best=str(out / "best"), last=str(out / "last"), dataset=info.name, model=cfg.model.name,
        epochs=t.epochs, steps=loop.global_step, best_epoch=loop.best_epoch, best_top1=loop.best_metric,
        top1=last.get("val_top1", float("nan")), top5=last.get("val_top5", float("nan")),
        loss=last.get("val_loss", float("nan")), train_loss=last.get("train_loss", float("nan")),
        seconds=time.perf_counter() - t_start, resumed=resume, history=history,
    )
    cb.on_end(result)
    return result

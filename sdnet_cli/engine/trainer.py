"""The training loop, phase by phase: :class:`Trainer` ``setup → (run_epoch → epoch_metrics → checkpoint)* → finish``.

One step (:meth:`Trainer.step`): the learning rate of the global step (schedule.py, computed once), the
forward under the run's precision (precision.py; CSC layers renormalise their atoms and track their step
size by one warm power iteration; with ``train.step_size=official`` the official code's step size instead,
official_step_size.py), cross-entropy, the batch's loss and accuracy summed over ranks — a
non-finite loss stops the run before the weights are touched —, backward + optimizer step, then checks
that every weight and (after the step-size refresh, step_sizes.py) every step size is finite. Each epoch
ends with :meth:`epoch_metrics` (the validation split when there is one, and the test set) and
:meth:`checkpoint` (``last/``; ``best/`` when the selection metric improved; ``metrics.jsonl``; the
resumable state). Only rank 0 writes. Ctrl-C (SIGINT) sets a flag, checked (all-reduced on its own under
DDP) after each step: the state is saved and :class:`TrainingInterrupted` raised.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config
from ..fsio import atomic_write_bytes, write_jsonl
from ..layers import csc_layers
from ..models.files import ModelConfig, save_model
from . import distributed as D
from .callbacks import Callbacks
from .data import TrainData, timed_batches
from .metrics_loop import loader_metrics, topk_correct
from .logs import RunLogs
from .official_step_size import OfficialStepSizes
from .precision import Precision
from .result import NonFiniteLossError, TrainingInterrupted, TrainResult
from .rundir import RunDirectory
from .schedule import lr_at, set_lr
from .state import LoopState, save_state
from .stopflag import StopFlag
from .step_sizes import StepSizeKeeper


def criterion(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Mean cross-entropy of a batch (module-level so tests can replace it)."""
    return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)


def empty_meter() -> dict[str, float]:
    """An epoch's running training sums, before its first step."""
    return {"loss": 0.0, "correct": 0.0, "n": 0.0, "seconds": 0.0}


@dataclass(kw_only=True)
class Setup:
    """Everything a run needs, built and validated by ``train`` before anything is written."""

    cfg: Config
    dinfo: D.DistInfo
    device: torch.device
    data: TrainData
    mcfg: ModelConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    precision: Precision
    target: Path  # the run directory
    run: RunDirectory | None  # rank 0: where it writes (and its lock)
    loop: LoopState
    resumed: bool
    image_size: int  # the side of the training images (data.image_size, else the dataset's)
    info: dict[str, Any]  # the other facts for on_start (threads, memory reuse, …)


class Trainer:
    """One run over a :class:`Setup`; :meth:`run` returns the :class:`TrainResult`."""

    def __init__(self, s: Setup, callbacks: Callbacks) -> None:
        self.s, self.cfg, self.cb, self.loop = s, s.cfg, callbacks, s.loop
        self.params = [p for p in s.model.parameters() if p.requires_grad]
        official = s.cfg.train.step_size == "official"  # the official code's step sizes instead of the keeper's
        self.keeper = StepSizeKeeper(s.model, 0 if official else s.cfg.train.step_size_every)
        self.official = OfficialStepSizes(s.model, s.cfg.train.seed) if official else None
        self.steps_per_epoch = s.data.sampler.batches_per_epoch()
        self.net: nn.Module = s.model
        self.logs = RunLogs(None, False, None)
        self.meter: dict[str, float] = {}
        self.last_lr = self._lr(max(0, self.loop.global_step - 1))
        self._t_prev = self.t_start = time.perf_counter()

    def _lr(self, step: int) -> float:
        o = self.cfg.optim
        return lr_at(step, self.steps_per_epoch, self.cfg.train.epochs, o.lr, o.schedule, o.milestones, o.gamma,
                     o.warmup_epochs, o.min_lr)

    # -- phases ------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Wrap the model (DDP, compile), write ``config.yaml``, open the logs, report the start."""
        s, t = self.s, self.cfg.train
        if s.dinfo.enabled:
            ids = [s.device.index] if s.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(s.model, device_ids=ids)
        if t.compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        out = s.run.path if s.run is not None else None
        if out is not None:
            atomic_write_bytes(out / "config.yaml", self.cfg.to_yaml().encode())
        self.logs = RunLogs(out, t.tensorboard, self.loop.global_step if s.resumed else None)
        self.cb.on_start({**s.info, "image_size": s.image_size, "output": str(s.target), "epochs": t.epochs,
                          "steps_per_epoch": self.steps_per_epoch,
                          "resumed_at": (self.loop.epoch, self.loop.batch) if s.resumed else None,
                          "warnings": list(self.logs.warnings)})

    def run(self) -> TrainResult:
        """All remaining epochs, then :meth:`finish`. A failure before a ``--force`` run's first checkpoint
        drops its staging folder (the old run stays as it was)."""
        self.setup()
        try:
            with StopFlag() as stop:
                while self.loop.epoch < self.cfg.train.epochs:
                    self.run_epoch(stop)
                    self.checkpoint(self.epoch_metrics())
        except BaseException:
            if self.s.run is not None:
                self.s.run.discard()
            raise
        finally:
            self.logs.close()
            if self.official is not None:
                self.official.remove()
        return self.finish()

    def run_epoch(self, stop: StopFlag) -> None:
        """The rest of epoch ``loop.epoch`` (from batch ``loop.batch``), with the configured mid-epoch states."""
        loop, t = self.loop, self.cfg.train
        loader = self.s.data.epoch_loader(loop.epoch, loop.batch)
        self.meter = loop.meter or empty_meter()
        self.cb.on_epoch_start(loop.epoch, self.steps_per_epoch, loop.batch)
        self.net.train()
        self._t_prev = time.perf_counter()
        for x, y, data_s in timed_batches(loader):
            self.step(x, y, data_s)
            if D.any_rank(stop.requested, self.s.device):
                self.checkpoint()
                raise TrainingInterrupted(f"interrupted at step {loop.global_step}; state saved in "
                                          f"{self.s.target / 'state'}", self.s.target)
            if t.checkpoint_every and loop.global_step % t.checkpoint_every == 0 and loop.batch < self.steps_per_epoch:
                self.checkpoint()

    def step(self, x: torch.Tensor, y: torch.Tensor, data_s: float) -> None:
        """One optimisation step on batch ``(x (N, C, H, W), y (N,))``."""
        s, loop, o = self.s, self.loop, self.cfg.optim
        x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = self.last_lr = self._lr(loop.global_step)
        set_lr(s.optimizer, lr)
        with s.precision.autocast():
            logits = self.net(x)
        loss = criterion(logits, y, o.label_smoothing)
        stats = torch.stack([loss.detach().double() * len(y), topk_correct(logits.detach(), y, 1).sum().double(),
                             torch.tensor(float(len(y)), dtype=torch.float64, device=y.device)])
        loss_sum, correct, n = D.all_reduce_sum(stats).cpu().tolist()
        if not math.isfinite(loss_sum / n):
            raise self._stopped(f"loss is {loss_sum / n}")
        s.precision.backward_step(loss, s.optimizer, self.params, o.grad_clip)
        self._check_finite("the weights are", self.params)  # before the refresh, which cannot take NaN
        self.keeper.after_step(loop.global_step + 1)
        self._check_finite("a CSC step size is", self._step_sizes())
        loop.global_step += 1
        loop.batch += 1
        if self.cfg.train.verify_ddp:
            D.check_ranks_identical(s.model, loop.global_step)
        self._record(loss_sum, correct, n, lr, data_s)

    def epoch_metrics(self) -> dict[str, Any]:
        """Converge the step sizes; the epoch's row: training sums, validation split (if any) and test set."""
        s, loop, m = self.s, self.loop, self.meter
        self.keeper.converge_step_sizes()  # unit atoms and a converged step size for what is evaluated and saved
        self._check_finite("a CSC step size is", self._step_sizes())
        loaders = {"val": s.data.val_loader, "test": s.data.test_loader}
        self.cb.on_eval_start(sum(len(ld.dataset) for ld in loaders.values() if ld is not None))  # type: ignore[arg-type]
        row: dict[str, Any] = {"epoch": loop.epoch + 1, "step": loop.global_step,
                               "train_loss": m["loss"] / max(m["n"], 1), "train_top1": 100.0 * m["correct"] / max(m["n"], 1)}
        for split, loader in loaders.items():
            if loader is not None:
                ev = loader_metrics(s.model, loader, s.data.num_classes, s.device, s.precision.autocast,
                              self.cfg.train.channels_last)
                row.update({f"{split}_loss": ev["loss"], f"{split}_top1": ev["top1"], f"{split}_top5": ev["top5"]})
        row.update(lr=self.last_lr, time=m["seconds"], images_per_s=m["n"] / max(m["seconds"], 1e-9),
                   selected_on=s.data.selected_on)
        return row

    def checkpoint(self, row: dict[str, Any] | None = None) -> None:
        """Save: at an epoch's end (``row``) ``last/``, ``best/`` when the selection metric improved and
        ``metrics.jsonl``; always the resumable state. The first one switches a staged ``--force`` run in."""
        loop, improved = self.loop, False
        if row is not None:
            score = row[f"{row['selected_on']}_top1"]
            improved = loop.best_metric is None or score > loop.best_metric
            if improved:
                loop.best_metric, loop.best_epoch = score, loop.epoch + 1
            loop.history.append(row)
            loop.epoch, loop.batch, loop.meter = loop.epoch + 1, 0, {}
        if self.s.run is not None:
            self._save(self.s.run, row, improved)
        if row is not None:
            self.cb.on_epoch_end({**row, "best": improved})

    def finish(self) -> TrainResult:
        """The result of the run (reported through ``on_end``)."""
        s, loop = self.s, self.loop
        last = loop.history[-1] if loop.history else {}
        nan = float("nan")
        result = TrainResult(
            output=str(s.target), best=str(s.target / "best"), last=str(s.target / "last"), dataset=s.mcfg.dataset or "",
            model=self.cfg.model.name, epochs=self.cfg.train.epochs, steps=loop.global_step, best_epoch=loop.best_epoch,
            best_top1=loop.best_metric, top1=last.get("test_top1", nan), top5=last.get("test_top5", nan),
            loss=last.get("test_loss", nan), train_loss=last.get("train_loss", nan),
            seconds=time.perf_counter() - self.t_start, resumed=s.resumed, selected_on=s.data.selected_on,
            val_top1=last.get("val_top1"), history=list(loop.history))
        self.cb.on_end(result)
        return result

    # -- helpers -----------------------------------------------------------------------------------
    def _step_sizes(self) -> list[torch.Tensor]:
        return [layer.step_size for layer in csc_layers(self.s.model)]

    def _check_finite(self, what: str, tensors: list[torch.Tensor]) -> None:
        """One host read: is every entry of ``tensors`` finite? (a sum is NaN/inf when any entry is)."""
        if tensors and not bool(torch.stack([t.detach().sum() for t in tensors]).isfinite().all()):
            raise self._stopped(f"{what} not finite after the optimizer step")

    def _stopped(self, what: str) -> NonFiniteLossError:
        loop, run = self.loop, self.s.run
        where = f"at step {loop.global_step + 1} (epoch {loop.epoch + 1}, batch {loop.batch + 1})"
        if run is not None and run.staged:
            kept = f"the last good checkpoint is kept: the previous run in {self.s.target}, unchanged"
        else:
            kept = (f"The last good checkpoint is kept in {self.s.target} "
                    f"({'epoch ' + str(loop.epoch) if loop.history else 'none yet'})")
        return NonFiniteLossError(f"{what} {where}; stopped. {kept}; lower --lr or check the data")

    def _record(self, loss_sum: float, correct: float, n: float, lr: float, data_s: float) -> None:
        """Running sums of the epoch, the ``steps.jsonl`` row (with its wall and data-wait seconds), on_batch."""
        now = time.perf_counter()
        wall, self._t_prev = now - self._t_prev, now
        m, loop = self.meter, self.loop
        m["loss"] += loss_sum
        m["correct"] += correct
        m["n"] += n
        m["seconds"] += wall
        loop.meter = m
        row = {"step": loop.global_step, "epoch": loop.epoch + 1, "batch": loop.batch, "loss": loss_sum / n,
               "top1": 100.0 * correct / n, "lr": lr, "wall_s": wall, "data_s": data_s}
        self.logs.step(row)
        self.cb.on_batch({**row, "images_per_s": m["n"] / max(m["seconds"], 1e-9)})

    def _save(self, run: RunDirectory, row: dict[str, Any] | None, improved: bool) -> None:
        s, out = self.s, run.path
        if row is not None:
            save_model(s.model, out / "last", self._model_config(row, "last"))
            if improved:
                save_model(s.model, out / "best", self._model_config(row, "best"))
            write_jsonl(out / "metrics.jsonl", self.loop.history)
            self.logs.epoch(row)
        save_state(out / "state", s.model, s.optimizer, self.loop, s.precision, {"config": self.cfg.to_dict()})
        if run.commit():
            self.logs = self.logs.moved(run.path)

    def _model_config(self, row: dict[str, Any], checkpoint: str) -> ModelConfig:
        """The model directory's config.json: the test metrics, and which checkpoint/selection this is."""
        d = self.s.data
        metrics: dict[str, Any] = {
            "epoch": row["epoch"], "split": "test", "top1": row["test_top1"], "top5": row["test_top5"],
            "loss": row["test_loss"], "train_loss": row["train_loss"], "train_top1": row["train_top1"],
            "image_size": self.s.image_size, "seed": self.cfg.train.seed, "selected_on": d.selected_on,
            "checkpoint": checkpoint, "val_split": d.val_split}
        if "val_top1" in row:
            metrics.update(val_top1=row["val_top1"], val_top5=row["val_top5"], val_loss=row["val_loss"])
        return dataclasses.replace(self.s.mcfg, metrics=metrics)

"""``train(config) -> TrainResult``: what ``sdnet train`` and the tests call.

:func:`train` validates everything before it writes anything — the configuration, the output folder
(new/empty, or an existing run with ``resume``/``force``), the datasets (read or downloaded), the model,
the optimizer, the precision and, on resume, the saved state — then takes the run's lock and hands a
:class:`~sdnet_cli.engine.trainer.Setup` to the :class:`~sdnet_cli.engine.trainer.Trainer`. On CPU it sets
the thread count (``train.threads``; 0 = cores // local processes) and, when ``train.cpu_memory_reuse``
allows, glibc memory reuse; both are reported in ``on_start``'s info (``threads``, ``memory_reuse``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from ..config import Config, check_config
from ..data.datasets import DatasetInfo, dataset_info
from ..devices import resolve_device
from ..outputs import OutputLock
from . import distributed as D
from .callbacks import Callbacks
from .data import build_data
from .precision import Precision
from .result import NonFiniteLossError, TrainingInterrupted, TrainResult
from .resume import check_resume, resume_config
from .rundir import RunDirectory, check_output, default_output, newest_run
from .setup import build_model, build_optimizer, cpu_settings, model_config
from .state import LoopState, load_state
from .trainer import Setup, Trainer

__all__ = ["train", "TrainResult", "NonFiniteLossError", "TrainingInterrupted", "resume_config", "newest_run"]


def train(cfg: Config, *, resume: bool = False, force: bool = False, callbacks: Callbacks | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` into ``cfg.train.output`` (default ``runs/<dataset>-<model>-<time>``).

    ``resume`` continues the run's saved state exactly (see :func:`resume_config` for its configuration and
    :func:`~sdnet_cli.engine.resume.check_resume` for what may differ from the run's, checked first);
    ``force`` replaces an existing run, which stays intact until the new run's first checkpoint. Raises
    :class:`~sdnet_cli.errors.UsageError` for bad input (:class:`~sdnet_cli.outputs.OutputLocked` when another
    process holds the output), :class:`NonFiniteLossError`, :class:`TrainingInterrupted`.
    """
    check_config(cfg)
    info = dataset_info(cfg.data.dataset)
    dinfo = D.init_distributed(resolve_device(cfg.train.device, 0).type)
    try:
        setup = _prepare(cfg, info, dinfo, resume, force)
        try:
            return Trainer(setup, callbacks or Callbacks()).run()
        finally:
            if setup.run is not None:
                setup.run.close()
    finally:
        if dinfo.enabled:
            D.shutdown_distributed()


def _target(cfg: Config, info: DatasetInfo, dinfo: D.DistInfo) -> Path:
    """The run directory, chosen by rank 0 (a timestamped default) and broadcast to the others."""
    target = Path(cfg.train.output) if cfg.train.output else default_output(info.name, cfg.model.name)
    if dinfo.enabled:
        box = [str(target)]
        dist.broadcast_object_list(box, src=0)
        target = Path(box[0])
    return target


def _prepare(cfg: Config, info: DatasetInfo, dinfo: D.DistInfo, resume: bool, force: bool) -> Setup:
    """Validate and build everything (read-only), then lock (rank 0) and open the run directory.

    The lock comes after the checks, so a refused run leaves nothing behind, not even a lock file; under the
    lock the output is checked again and a resumed state is read again (another run may have ended between).
    A resume is checked against the saved state (its configuration and its optimizer) before anything is
    built, so nothing — ``config.yaml`` included — is written for a resume that cannot continue the run.
    """
    t = cfg.train
    device = resolve_device(t.device, dinfo.local_rank)
    target = _target(cfg, info, dinfo)
    if dinfo.is_main:
        OutputLock(target).probe()  # another run on it: say so first
        check_output(target, resume, force)
    if resume:
        check_resume(target, cfg)
    data = build_data(cfg, dinfo, device)
    mcfg = model_config(cfg, info, data.num_classes)
    model = build_model(mcfg, cfg, dinfo, device)
    optimizer = build_optimizer(cfg, model)
    precision = Precision(t.amp, t.amp_dtype, device)
    loop = load_state(target / "state", model, optimizer, precision)[0] if resume else LoopState()
    lock = RunDirectory.acquire_lock(target) if dinfo.is_main else None
    try:
        if resume and lock is not None:
            check_resume(target, cfg)
            loop = load_state(target / "state", model, optimizer, precision)[0]
        run = RunDirectory.open(target, lock, resume, force) if lock is not None else None
    except BaseException:
        _release(lock)
        raise
    threads, reuse = cpu_settings(t, dinfo.local_world) if device.type == "cpu" else (torch.get_num_threads(), False)
    facts = {"device": str(device), "threads": threads, "memory_reuse": reuse, "world": dinfo.world,
             "dataset": info.name, "model": cfg.model.name, "train_images": len(data.train_set),  # type: ignore[arg-type]
             "val_images": len(data.val_loader.dataset) if data.val_loader is not None else 0,  # type: ignore[arg-type]
             "selected_on": data.selected_on, "is_main": dinfo.is_main}
    return Setup(cfg=cfg, dinfo=dinfo, device=device, data=data, mcfg=mcfg, model=model, optimizer=optimizer,
                 precision=precision, target=target, run=run, loop=loop, resumed=resume,
                 image_size=int(cfg.data.image_size or info.image_size), info=facts)


def _release(lock: OutputLock | None) -> None:
    if lock is not None:
        lock.release()

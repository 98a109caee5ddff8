"""The data of a training run: the training part of the training set, a held-out validation split, the test set.

With ``data.val_split = f > 0`` the training set is split once by
:func:`~sdnet_cli.data.splits.train_val_indices` ``(n, f, seed=train.seed)``: the model trains on the
first part (augmented) and ``best/`` is selected on the held-out part (not augmented); the test set is
only reported. ``f = 0`` trains on all training images and selects on the test set (the paper's protocol).
Under ``torchrun`` rank 0 downloads first; each rank evaluates a strided shard of the validation/test sets.
"""

from __future__ import annotations

from dataclasses import dataclass
import time
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import Config
from ..data.datasets import build_dataset
from ..data.splits import train_val_indices
from . import distributed as D


@dataclass
class TrainData:
    """Loaders and sizes of one run; ``val_loader`` is ``None`` without a validation split."""

    train_set: Dataset
    augmented: Any  # the dataset whose ``set_epoch`` selects the augmentation stream
    sampler: D.ShardedBatchSampler
    val_loader: DataLoader | None
    test_loader: DataLoader
    num_classes: int
    val_split: float
    workers: int
    pin: bool

    @property
    def selected_on(self) -> str:
        """Which split chooses ``best/``: ``'val'`` or ``'test'``."""
        return "val" if self.val_loader is not None else "test"

    def epoch_loader(self, epoch: int, start: int) -> DataLoader:
        """The training batches of ``epoch`` from batch ``start`` on (resume mid-epoch)."""
        self.sampler.set_epoch(epoch, start)
        self.augmented.set_epoch(epoch)
        return DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=self.workers, pin_memory=self.pin)


class KeepLastBatchSampler(D.ShardedBatchSampler):
    """:class:`~sdnet_cli.engine.distributed.ShardedBatchSampler` that also yields the last partial batch of the
    epoch's order (``n mod batch_size`` images, when not 0). Under ``torchrun`` each rank takes an equal slice
    of ``⌊r / world⌋`` of its ``r`` images (the last ``r mod world`` are left out, so DDP's average is still
    the mean over the batch); a last batch of fewer than 2 images a rank is dropped (BatchNorm cannot train
    on one value per channel)."""

    def _last_per_rank(self) -> int:
        per = (self.n % self.batch_size) // self.world
        return per if per >= 2 else 0

    def batches_per_epoch(self) -> int:
        full = self.n // self.batch_size + (1 if self._last_per_rank() else 0)
        return min(full, self.limit) if self.limit else full

    def __iter__(self) -> Iterator[list[int]]:
        order = D.epoch_permutation(self.n, self.seed, self.epoch)
        full = self.n // self.batch_size
        for b in range(self.start, self.batches_per_epoch()):
            per = self.batch_size // self.world if b < full else self._last_per_rank()
            lo = b * self.batch_size + self.rank * per
            yield order[lo:lo + per].tolist()


def _shard(ds: Dataset, dinfo: D.DistInfo) -> Dataset:
    return Subset(ds, range(dinfo.rank, len(ds), dinfo.world)) if dinfo.enabled else ds  # type: ignore[arg-type]


def _main_first(make: Callable[[bool], Dataset], download: bool, dinfo: D.DistInfo) -> Dataset:
    """``make(download)`` on rank 0 first (it may download), then on the other ranks without downloading."""
    if dinfo.is_main:
        ds = make(download)
    if dinfo.enabled:
        dist.barrier()
    if not dinfo.is_main:
        ds = make(False)
    return ds


def build_data(cfg: Config, dinfo: D.DistInfo, device: torch.device) -> TrainData:
    """Read (or download) the datasets of ``cfg.data`` and make the sampler and evaluation loaders."""
    d, t = cfg.data, cfg.train
    kw = dict(root=d.root, image_size=d.image_size, seed=t.seed, skip_bad_images=d.skip_bad_images, in_chans=d.in_chans)
    full = _main_first(lambda dl: build_dataset(d.dataset, "train", train_transform=d.augment, download=dl, **kw),
                       d.download, dinfo)
    test = build_dataset(d.dataset, "test", train_transform=False, download=False, **kw)
    train_idx, val_idx = train_val_indices(len(full), d.val_split, t.seed)  # type: ignore[arg-type]
    train_set: Dataset = full
    pin = device.type == "cuda"
    val_loader = None
    if len(val_idx):
        train_set = Subset(full, train_idx.tolist())
        plain = build_dataset(d.dataset, "train", train_transform=False, download=False, **kw)
        val_loader = DataLoader(_shard(Subset(plain, val_idx.tolist()), dinfo), batch_size=t.eval_batch_size,
                                num_workers=d.workers, pin_memory=pin)
    make = D.ShardedBatchSampler if t.drop_last else KeepLastBatchSampler
    sampler = make(len(train_set), t.batch_size, t.seed, dinfo.rank, dinfo.world, t.limit_batches)  # type: ignore[arg-type]
    test_loader = DataLoader(_shard(test, dinfo), batch_size=t.eval_batch_size, num_workers=d.workers, pin_memory=pin)
    return TrainData(train_set, full, sampler, val_loader, test_loader, int(full.num_classes),  # type: ignore[attr-defined]
                     float(d.val_split), d.workers, pin)


def _unwrap_error(e: Exception) -> Exception:
    """DataLoader workers re-raise as 'Caught ValueError in DataLoader worker…'; keep the original line."""
    text = str(e)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
        return type(e)(last.split(": ", 1)[1] if ": " in last else last)
    return e


def timed_batches(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """``(x, y, seconds waited for the batch)``."""
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            return
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            raise _unwrap_error(e) from None
        yield x, y, time.perf_counter() - t0

"""``evaluate(EvalOptions) -> EvalReport``: what ``sdnet eval`` does, as one library call.

Load a model (run dir, model dir, zoo name, Hub repo) and measure it on the test split. The dataset,
normalisation and image size default to the ones the model was trained with (its ``config.json``);
``lmbd`` overrides λ of the first (or every) CSC layer at test time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from torch.utils.data import DataLoader

from ..checks import require_finite, require_int
from ..data.datasets import build_dataset, dataset_info
from ..devices import check_device, resolve_device
from ..errors import UsageError
from ..layers import set_lmbd
from ..hub.resolve import load_model_with_config, resolve_model_dir
from ..models.sizes import check_image_size
from .metrics_loop import loader_metrics


@dataclass(frozen=True)
class EvalOptions:
    """What ``sdnet eval`` measures; validated at construction (before any file is read)."""

    model: str
    dataset: str | None = None
    data_root: str | None = None
    lmbd: float | None = None
    lmbd_layers: str = "first"
    batch_size: int = 256
    device: str = "auto"
    image_size: int | None = None
    workers: int = 0
    download: bool = True

    def __post_init__(self) -> None:
        require_int("--batch-size", self.batch_size, 1)
        require_int("--workers", self.workers, 0)
        if self.image_size is not None:
            require_int("--image-size", self.image_size, 1)
        if self.lmbd_layers not in ("first", "all"):
            raise UsageError(f"--lambda-layers must be 'first' or 'all', got {self.lmbd_layers!r}")
        if self.lmbd is not None:
            require_finite("--lambda", self.lmbd)
        check_device(self.device)
        if self.dataset is not None:
            dataset_info(self.dataset)  # unknown names fail here, naming the valid ones


@dataclass
class EvalReport:
    """Top-1/top-5 (%), mean loss, per-class top-1 (%) and throughput of one model on a test split."""

    model: str
    model_dir: str
    architecture: str
    dataset: str
    image_size: int
    lmbd: float | None
    lmbd_layers: str | None
    device: str
    batch_size: int
    recorded_top1: float | None
    selected_on: str | None
    loss: float
    top1: float
    top5: float
    per_class: list[float | None]
    images: int
    seconds: float
    images_per_s: float
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(opts: EvalOptions, on_batch: Callable[[int], None] | None = None) -> EvalReport:
    """Evaluate ``opts.model`` on the test split of its (or ``opts.dataset``'s) data; ``on_batch(n)`` after
    each batch of ``n`` images."""
    model_dir = resolve_model_dir(opts.model)
    dev = resolve_device(opts.device)
    model, cfg = load_model_with_config(model_dir, dev)
    name = opts.dataset or cfg.dataset
    if name is None:
        raise UsageError(f"{model_dir}/config.json names no dataset; pass --dataset")
    info = dataset_info(name)
    recorded = cfg.metrics or {}
    same_data = name == cfg.dataset
    size = opts.image_size or (recorded.get("image_size") if same_data else None) or info.image_size
    check_image_size(int(size), cfg.stem_type)
    in_chans = int(cfg.model_args.get("in_chans", 3))
    ds = build_dataset(name, "test", root=opts.data_root, train_transform=False, download=opts.download,
                       image_size=size, in_chans=in_chans)
    if ds.num_classes != cfg.num_classes:
        raise UsageError(f"the model has {cfg.num_classes} classes but the {name} test set has {ds.num_classes}; "
                         "pass the dataset it was trained on (--dataset)")
    if same_data and cfg.mean and cfg.std and (tuple(cfg.mean) != tuple(info.mean) or tuple(cfg.std) != tuple(info.std)):
        from ..data import transforms as T  # the model's own normalisation wins

        ds.transform = (T.pil_transform(cfg.mean, cfg.std, False, size) if name == "imagenet"
                        else T.array_transform(cfg.mean, cfg.std, False, size, 0, False))
    if opts.lmbd is not None:
        set_lmbd(model, float(opts.lmbd), opts.lmbd_layers)
    loader = DataLoader(ds, batch_size=opts.batch_size, shuffle=False, num_workers=opts.workers,
                        pin_memory=dev.type == "cuda")
    t0 = time.perf_counter()
    res = loader_metrics(model, loader, ds.num_classes, dev, on_batch=on_batch)
    return EvalReport(
        model=str(opts.model), model_dir=str(model_dir), architecture=cfg.architecture, dataset=name,
        image_size=int(size), lmbd=opts.lmbd, lmbd_layers=opts.lmbd_layers if opts.lmbd is not None else None,
        device=str(dev), batch_size=opts.batch_size, recorded_top1=recorded.get("top1") if same_data else None,
        selected_on=recorded.get("selected_on"), wall_seconds=time.perf_counter() - t0, **res,
    )

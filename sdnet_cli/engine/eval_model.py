"""``eval_model(src)``: load a model (run dir, model dir, zoo name, Hub repo) and evaluate it on a test split.

The dataset, normalisation and image size default to the ones the model was trained with (its
``config.json``); ``lmbd`` overrides λ of the first (or every) CSC layer at test time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from ..data.datasets import build_dataset, dataset_info
from ..layers import set_lmbd
from ..models.load import load_model_with_config, resolve_model_dir
from .evaluate import evaluate
from .setup import resolve_device
from ..errors import UsageError


def eval_model(
    src: str | Path,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    lmbd: float | None = None,
    lmbd_layers: str = "first",
    batch_size: int = 256,
    device: str = "auto",
    image_size: int | None = None,
    workers: int = 0,
    download: bool = True,
    on_batch: Any = None,
) -> dict[str, Any]:
    """Top-1/top-5 (%), mean loss, per-class top-1 and throughput of ``src`` on the test split.

    Returns the :func:`~sdnet_cli.engine.evaluate.evaluate` dict plus ``model``, ``model_dir``,
    ``architecture``, ``dataset``, ``image_size``, ``lmbd``, ``lmbd_layers``, ``device``, ``recorded_top1``
    (the top-1 stored at training time, when any).
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if lmbd_layers not in ("first", "all"):
        raise UsageError(f"--lmbd-layers must be 'first' or 'all', got {lmbd_layers!r}")
    if lmbd is not None and lmbd < 0:
        raise UsageError(f"--lmbd must be >= 0, got {lmbd}")
    model_dir = resolve_model_dir(src)
    dev = resolve_device(device)
    model, cfg = load_model_with_config(model_dir, dev)
    name = dataset or cfg.dataset
    if name is None:
        raise UsageError(f"{model_dir}/config.json names no dataset; pass --dataset")
    info = dataset_info(name)
    recorded = cfg.metrics or {}
    same_data = name == cfg.dataset
    size = image_size or (recorded.get("image_size") if same_data else None) or info.image_size
    in_chans = int(cfg.model_args.get("in_chans", 3))
    ds = build_dataset(name, "test", root=data_root, train_transform=False, download=download, image_size=size,
                       in_chans=in_chans)
    if ds.num_classes != cfg.num_classes:
        raise UsageError(f"the model has {cfg.num_classes} classes but the {name} test set has {ds.num_classes}; "
                         "pass the dataset it was trained on (--dataset)")
    if same_data and cfg.mean and cfg.std and (tuple(cfg.mean) != tuple(info.mean) or tuple(cfg.std) != tuple(info.std)):
        from ..data import transforms as T  # the model's own normalisation wins

        ds.transform = (T.pil_transform(cfg.mean, cfg.std, False, size) if name == "imagenet"
                        else T.array_transform(cfg.mean, cfg.std, False, size, 0, False))
    if lmbd is not None:
        set_lmbd(model, float(lmbd), lmbd_layers)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=dev.type == "cuda")
    t0 = time.perf_counter()
    res = evaluate(model, loader, ds.num_classes, dev, on_batch=on_batch)
    res["wall_seconds"] = time.perf_counter() - t0
    return {
        "model": str(src), "model_dir": str(model_dir), "architecture": cfg.architecture, "dataset": name,
        "image_size": int(size), "lmbd": lmbd, "lmbd_layers": lmbd_layers if lmbd is not None else None,
        "device": str(dev), "batch_size": batch_size,
        "recorded_top1": recorded.get("top1") if same_data else None, **res,
    }

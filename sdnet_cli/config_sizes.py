"""The image size a training configuration needs: the smallest input its model takes, and choosing it.

Registry models (``sdnet*``, ``resnet*``) take down to the total stride of their stem
(:data:`~sdnet_cli.models.sizes.MIN_IMAGE_SIZE`: 8 with the CIFAR stem). ``torchvision:``/``timm:`` models keep
their ImageNet stem (stride 32) and some need more, as their own libraries record it: torchvision's weights
metadata (``min_size``, e.g. 75 for inception_v3, 224 for vit_b_16) and timm's pretrained config
(``fixed_input_size`` → its ``input_size``; else ``min_input_size``). Nothing is downloaded or built.
"""

from __future__ import annotations

from typing import Any

from .models.sizes import MIN_IMAGE_SIZE

RESIZABLE = ("digits", "imagenet")
"""Datasets whose images are resized to ``data.image_size`` (CIFAR is used at its 32x32 only)."""


def _torchvision_least(base: str) -> int:
    import torchvision.models

    try:
        weights = list(torchvision.models.get_model_weights(base))
    except (ValueError, KeyError):  # a model without published weights: no recorded minimum
        return 1
    size = weights[0].meta.get("min_size") if weights else None
    return max(size) if isinstance(size, (tuple, list)) and size else 1


def _timm_least(base: str) -> int:
    try:
        import timm
    except ImportError:  # the model name check says timm is missing
        return 1
    cfg = timm.get_pretrained_cfg(base.split(".")[0])
    if cfg is None:
        return 1
    if getattr(cfg, "fixed_input_size", False) and getattr(cfg, "input_size", None):
        return int(cfg.input_size[-1])
    least = getattr(cfg, "min_input_size", None)
    return int(least[-1]) if least else 1


def model_min_size(model: str, stem_type: str) -> int:
    """The smallest square input ``model`` (a registry name built with ``stem_type``, or
    ``torchvision:``/``timm:NAME``) takes: its stem's total stride, raised to what torchvision/timm record."""
    from .models.ecosystem import is_ecosystem_name, split_name

    least = MIN_IMAGE_SIZE.get(stem_type, 1)
    if not is_ecosystem_name(model):
        return least
    prefix, base, _ = split_name(model)
    return max(least, _torchvision_least(base) if prefix == "torchvision" else _timm_least(base))


def pick_image_size(cfg: Any) -> str | None:
    """With ``data.image_size`` unset and a ``torchvision:``/``timm:`` model that takes more than the dataset's
    images (e.g. torchvision:resnet18 on digits, 8x8): set it to the model's minimum and return the line saying
    so; else change nothing and return ``None``. The model name is not checked here: an unknown one counts as
    taking its stem's size, and :func:`~sdnet_cli.config.check_config`, which runs next, names it."""
    from .data.datasets import check_dataset_name, dataset_info
    from .models.ecosystem import is_ecosystem_name

    d, name = cfg.data, cfg.model.name
    if d.image_size is not None or not is_ecosystem_name(name) or d.dataset not in RESIZABLE:
        return None
    check_dataset_name(d.dataset)
    native = dataset_info(d.dataset).image_size
    least = model_min_size(name, "imagenet")
    if native >= least:
        return None
    d.image_size = least
    return (f"{name} takes images of at least {least}x{least}; {d.dataset} images are {native}x{native}: "
            f"training at data.image_size={least} (choose another with --set data.image_size=N)")

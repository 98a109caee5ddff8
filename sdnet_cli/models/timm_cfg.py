"""The ``pretrained_cfg`` timm reads from a model directory's ``config.json`` (pure: no timm import).

``timm.create_model("hf-hub:ORG/REPO")`` downloads ``config.json`` and, when it has a ``pretrained_cfg``
object, builds ``architecture`` (registered with timm by ``import sdnet_cli.timm``) with the top-level
``model_args`` and ``num_classes``, then loads ``pretrained_cfg["hf_hub_filename"]`` (our
``model.safetensors``) strictly. Every key here is a field of ``timm.models.PretrainedCfg`` (timm refuses
others). Our own reader ignores ``pretrained_cfg``; ``stem_type``, top-level in our format, is read back
from the same ``config.json`` by the timm entrypoint.
"""

from __future__ import annotations

from typing import Any

from .sizes import MIN_IMAGE_SIZE

TOTAL_STRIDE = {"cifar": 8, "imagenet": 32}  # input side / final feature-map side
# the normalisation of the datasets each stem_type is trained on (data/datasets.py; a test ties them together)
STEM_MEAN_STD = {"cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
                 "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
TIMM_PREFIX = "sdnet"  # the architectures sdnet_cli.timm registers with timm
PAPER = "Revisiting Sparse Convolutional Model for Visual Recognition"
PAPER_ID = "arXiv:2210.12945"


def default_pretrained_cfg(stem_type: str = "cifar", in_chans: int = 3, size: int | None = None,
                           mean: list[float] | None = None, std: list[float] | None = None,
                           num_classes: int = 1000) -> dict[str, Any]:
    """timm's data/head description of an sdnet model: ``input_size`` ``(C, S, S)`` (``S`` 32 for the CIFAR stem,
    224 for ImageNet's), ``pool_size`` (the final feature map, ``⌈S/8⌉`` or ``⌈S/32⌉``), normalisation
    (``mean``/``std`` of the training data, else those of ``stem_type``'s dataset), first conv and classifier
    names."""
    side = size or (224 if stem_type == "imagenet" else 32)
    least = MIN_IMAGE_SIZE.get(stem_type, 8)
    pool = -(-side // TOTAL_STRIDE.get(stem_type, 8))
    cfg: dict[str, Any] = {
        "input_size": (in_chans, side, side), "min_input_size": (in_chans, least, least),
        "pool_size": (pool, pool),
        "interpolation": "bilinear", "crop_pct": 1.0 if stem_type == "cifar" else 0.875,
        "num_classes": num_classes, "first_conv": "layer0.0", "classifier": "linear",
        "license": "mit", "paper_name": PAPER, "paper_ids": PAPER_ID, "hf_hub_filename": "model.safetensors",
    }
    if mean is None or std is None:
        mean, std = STEM_MEAN_STD.get(stem_type, STEM_MEAN_STD["cifar"])
        if len(mean) != in_chans:  # e.g. one grey channel: the channels' average
            mean, std = (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans
    cfg.update(mean=tuple(mean), std=tuple(std))
    return cfg


def timm_config_fields(config: Any) -> dict[str, Any]:
    """``{"pretrained_cfg": …}`` to add to the ``config.json`` of a :class:`ModelConfig` timm can load
    (an ``sdnet*`` architecture), else ``{}``."""
    if not str(config.architecture).startswith(TIMM_PREFIX):
        return {}
    trained = config.metrics.get("image_size") if isinstance(config.metrics, dict) else None
    size = trained if isinstance(trained, int) and not isinstance(trained, bool) else None
    in_chans = config.model_args.get("in_chans", 3) if isinstance(config.model_args, dict) else 3
    return {"pretrained_cfg": default_pretrained_cfg(config.stem_type, int(in_chans), size, config.mean, config.std,
                                                     config.num_classes)}

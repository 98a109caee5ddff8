"""The smallest input a model can take."""

from __future__ import annotations

from ..errors import UsageError

MIN_IMAGE_SIZE = {"cifar": 8, "imagenet": 32}  # by stem_type: the network's total stride, 8 (CIFAR) or 32 (ImageNet)


def check_image_size(size: int | None, stem_type: str, what: str = "--image-size") -> None:
    """Raise a :class:`UsageError` unless ``size`` (``None`` = the default) is an int ≥ ``stem_type``'s minimum."""
    if size is None:
        return
    least = MIN_IMAGE_SIZE.get(stem_type, 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < least:
        raise UsageError(f"{what} must be an integer >= {least} for the {stem_type} stem, got {size!r}")

"""A model's channel space: grey models (``in_chans=1``) see the first channel of RGB images.

Training feeds a grey model the first channel (the bundled digits are grey: their three channels are equal),
so evaluation, robustness and visualisation feed it the same; RGB models see the images as they are.
"""

from __future__ import annotations

import numpy as np


def in_model_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` in a model's channel space: itself (``channels`` 3, or already one channel), else
    the first channel ``(N, H, W, 1)``."""
    if channels == 1 and images.shape[-1] != 1:
        return np.ascontiguousarray(images[..., :1])
    return images

"""One rule for grey models (``in_chans=1``): the first RGB channel, as training feeds it."""

from __future__ import annotations

import torch


def test_grey_models_see_the_first_channel_everywhere() -> None:
    """One rule for grey models: training, robustness and visualisation all feed the first RGB channel."""
    import numpy as np

    from sdnet_cli.data.channels import in_model_channels
    from sdnet_cli.robust.accuracy import to_pixels

    rgb = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    assert in_model_channels(rgb, 1).tolist() == rgb[..., :1].tolist()
    assert in_model_channels(rgb, 3) is rgb
    torch.testing.assert_close(to_pixels(rgb, 1), torch.from_numpy(rgb[..., :1].copy()).permute(0, 3, 1, 2) / 255.0)

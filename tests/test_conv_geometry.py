"""``functional.conv_geometry``: the code size and ``output_padding`` of ``D``/``Dᵀ``, checked against what
``F.conv2d`` and ``F.conv_transpose2d`` actually produce; the official step-size hooks refuse uneven padding."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from sdnet_cli.errors import UsageError
from sdnet_cli.layers import CSCConv2d
from sdnet_cli.layers import functional as SF


@pytest.mark.parametrize("k, s, p, d, e", [(3, 1, 1, 1, 0), (3, 2, 1, 1, 0), (5, 3, 2, 2, 0), (4, 1, 1, 1, 1),
                                           ((3, 5), (2, 3), (1, 2), (1, 2), 0), (2, 2, 0, 1, (1, 0))])
def test_code_size_and_output_padding_are_torchs(k, s, p, d, e) -> None:  # noqa: ANN001
    w = torch.ones(2, 1, *SF._pair(k))
    for h, wd in itertools.product(range(7, 12), range(8, 11)):
        x = SF.pad_bottom_right(torch.zeros(1, 1, h, wd), e)
        code = F.conv2d(x, w, None, s, p, d)
        code_hw, op = SF.conv_geometry((h, wd), k, s, p, d, e)
        assert code_hw == tuple(code.shape[-2:])
        back = F.conv_transpose2d(code, w, None, s, p, op, 1, d)
        assert tuple(back.shape[-2:]) == tuple(x.shape[-2:])  # exactly the padded image: D is Dᵀ's adjoint
        assert SF.adjoint_output_padding((h, wd), k, s, p, d, e) == op


def test_official_step_sizes_refuse_an_unevenly_padded_layer() -> None:
    from sdnet_cli.engine.official_step_size import OfficialStepSizes

    model = nn.Sequential(CSCConv2d(3, 4, 2, padding="same"))
    with pytest.raises(UsageError, match="evenly padded"):
        OfficialStepSizes(model, seed=0)

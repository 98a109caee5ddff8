"""``named_csc_layers`` / ``csc_layers``: the one search for sparse coding layers, checked against a walk of
the module tree written out here."""

from __future__ import annotations

import torch.nn as nn

from sdnet_cli.layers import CSCConv2d, SparseCodingLinear, csc_layers, named_csc_layers


def test_every_layer_once_in_module_order_and_by_kind() -> None:
    shared = CSCConv2d(4, 4, 3, padding=1)
    model = nn.Sequential(CSCConv2d(3, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 1), shared, shared),
                          nn.Flatten(), SparseCodingLinear(8, 5))
    want = [("0", model[0]), ("1.1", shared), ("3", model[3])]
    assert named_csc_layers(model) == want
    assert csc_layers(model) == [m for _, m in want]
    assert named_csc_layers(model, CSCConv2d) == want[:2]
    assert csc_layers(model, SparseCodingLinear) == [model[3]]
    assert csc_layers(nn.Linear(2, 2)) == []

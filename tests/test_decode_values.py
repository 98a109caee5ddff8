"""``CSCConv2d.decode`` and ``reconstruction_error`` against an independent adjoint (autograd of the conv), with
expansion > 1, strides, bias and groups: values, not only shapes."""

from __future__ import annotations

import pytest
import torch

from sdnet_cli.layers import CSCConv2d

from csc_helpers import adjoint_decode


@pytest.mark.parametrize("kwargs", [
    dict(expansion=2), dict(expansion=3, stride=2, padding=1), dict(expansion=2, bias=True),
    dict(groups=2, stride=2, padding=1), dict(expansion=1, dilation=2, padding=2),
])
def test_decode_is_the_adjoint_of_the_code_map(kwargs: dict) -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(4, 8, 3, **{"padding": 1, **kwargs}).double().eval()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
        got = layer.decode(y, image_hw=(9, 9))
        want = adjoint_decode(layer, y, x.shape)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    if layer.expansion == 1:  # (with expansion the error compares each stacked copy: the next test)
        torch.testing.assert_close(layer.reconstruction_error(x, y), (x - want).pow(2).flatten(1).sum(1))


def test_reconstruction_error_with_expansion_by_hand() -> None:
    torch.manual_seed(1)
    layer = CSCConv2d(3, 6, 3, padding=1, expansion=2).double().eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
    # D y on the stacked input: the adjoint of conv2d over 6 input channels, computed by autograd
    stacked = torch.zeros(2, 6, 6, 6, dtype=torch.float64, requires_grad=True)
    (torch.nn.functional.conv2d(stacked, layer.weight.detach(), None, 1, 1) * y).sum().backward()
    want = (torch.cat([x, x], 1) - stacked.grad).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(layer.reconstruction_error(x, y), want, rtol=1e-10, atol=1e-12)
    # and decode is the mean of the two copies' reconstructions
    torch.testing.assert_close(layer.decode(y), stacked.grad.unflatten(1, (2, 3)).mean(1), rtol=1e-10, atol=1e-12)


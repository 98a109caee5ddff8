"""``sdnet_cli.convert``: CSC layers in torchvision and timm models (built locally, no weights downloaded)."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn as nn
import torchvision

import sdnet_cli as sd
from sdnet_cli.errors import UsageError
from sdnet_cli.layers import CSCConv2d, csc_layers
from sdnet_cli.layers.functional import normalize_atoms

BUILDERS = {
    "tv-resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "tv-resnet50": lambda: torchvision.models.resnet50(num_classes=10),
    "tv-mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(num_classes=10),
    "tv-efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=10),
    "timm-resnet18": lambda: timm.create_model("resnet18", pretrained=False, num_classes=10),
    "timm-convnext_nano": lambda: timm.create_model("convnext_nano", pretrained=False, num_classes=10),
}
# The convolution each model applies to the image first (read off each library's model definition).
STEMS = {"tv-resnet18": "conv1", "tv-resnet50": "conv1", "tv-mobilenet_v3_small": "features.0.0",
         "tv-efficientnet_b0": "features.0.0", "timm-resnet18": "conv1", "timm-convnext_nano": "stem.0"}


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {n: m for n, m in model.named_modules() if type(m) is nn.Conv2d}


def _check_converted(key: str, where: str, size: int) -> None:
    torch.manual_seed(0)
    original = BUILDERS[key]()
    model, report = sd.convert(copy.deepcopy(original), where, return_report=True)
    if where == "stem":
        expected = [STEMS[key]]
        assert report.stem == STEMS[key]
    else:
        expected = [n for n, m in _convs(original).items() if max(m.kernel_size) > 1]
    assert list(report.replaced) == expected and report.unsupported == ()
    csc_names = [n for n, m in model.named_modules() if isinstance(m, CSCConv2d)]
    assert csc_names == expected
    kept = {n: m for n, m in _convs(model).items()}
    assert set(kept) == set(_convs(original)) - set(expected)  # every other conv is still a plain conv
    for name in expected:
        conv, layer = original.get_submodule(name), model.get_submodule(name)
        assert (layer.in_channels, layer.out_channels, layer.groups) == (conv.in_channels, conv.out_channels, conv.groups)
        assert layer.weight.shape == conv.weight.shape
        torch.testing.assert_close(layer.weight, normalize_atoms(conv.weight))  # unit-norm atoms of the conv weight
        if conv.bias is not None:
            torch.testing.assert_close(layer.bias, conv.bias)
    assert _n_params(model) == _n_params(original)

    x = torch.randn(2, 3, size, size)
    original.train(), model.train()
    out = model(x)
    assert out.shape == original(x).shape == (2, 10)
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    for layer in csc_layers(model):
        assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
        assert layer.step_size.item() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("key", list(BUILDERS))
def test_convert_stem(key: str) -> None:
    _check_converted(key, "stem", 32)


@pytest.mark.parametrize("key", ["tv-mobilenet_v3_small", "timm-convnext_nano"])
def test_convert_all(key: str) -> None:
    _check_converted(key, "all", 32)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["tv-resnet18", "tv-resnet50", "tv-efficientnet_b0", "timm-resnet18"])
def test_convert_all_larger_models(key: str) -> None:
    _check_converted(key, "all", 32)


class _TwoPaths(nn.Module):
    """The stem is registered last but runs first; ``shared`` is registered under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(8, 4, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 1)
        self.alias = self.shared
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.alias(self.stem(x)))


def test_stem_is_found_by_forward_order_not_registration_order() -> None:
    model = _TwoPaths()
    assert sd.plan_conversion(model, "stem").replaced == ("stem",)
    converted = sd.convert(model, "stem", init="random")
    assert isinstance(converted.stem, CSCConv2d) and isinstance(converted.head, nn.Conv2d)
    assert converted.stem.bias is not None and torch.equal(converted.stem.bias, torch.zeros(8))  # random: bias 0


def test_predicate_names_and_shared_modules() -> None:
    model = _TwoPaths()
    report = sd.plan_conversion(model, lambda name, conv: conv.out_channels == 8)
    assert report.replaced == ("shared", "stem")
    model = sd.convert(model, ["shared"], lmbd=0.3)
    assert model.shared is model.alias and isinstance(model.alias, CSCConv2d) and model.alias.lmbd == 0.3
    with pytest.raises(UsageError, match="did you mean 'stem'"):
        sd.convert(_TwoPaths(), ["stme"])


def test_unsupported_convs_are_reported_by_name() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.ConvTranspose2d(4, 4, 3),
                          nn.Conv2d(4, 4, 3))
    with pytest.raises(UsageError) as err:
        sd.convert(copy.deepcopy(model), "all")
    assert "0: padding_mode='reflect'" in str(err.value) and "1: a transposed convolution" in str(err.value)
    converted, report = sd.convert(model, "all", skip_unsupported=True, return_report=True)
    assert report.replaced == ("2",) and [n for n, _ in report.unsupported] == ["0", "1"]
    assert isinstance(converted[2], CSCConv2d) and type(converted[0]) is nn.Conv2d
    with pytest.raises(UsageError, match="reflect"):
        sd.convert(nn.Sequential(nn.Conv2d(3, 4, 3, padding_mode="reflect")), "stem")


def test_same_padding_becomes_ints_and_nothing_to_convert_is_an_error() -> None:
    model = sd.convert(nn.Sequential(nn.Conv2d(3, 4, 5, padding="same")), "all")
    assert model[0].padding == 2 and model[0](torch.randn(1, 3, 9, 9)).shape == (1, 4, 9, 9)
    with pytest.raises(UsageError, match="nothing to convert"):
        sd.convert(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), "all")
    with pytest.raises(UsageError, match="no convolution"):
        sd.convert(nn.Sequential(nn.Linear(3, 4)), "stem")
    with pytest.raises(UsageError, match="already a CSC layer"):
        sd.convert(sd.create_model("sdnet18", num_classes=10), "stem")
    with pytest.raises(UsageError, match="unknown CSC argument"):
        sd.convert(nn.Sequential(nn.Conv2d(3, 4, 3)), "all", lmbda=0.2)

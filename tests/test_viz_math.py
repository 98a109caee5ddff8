"""viz library: display transforms, whole-stack inversion, FISTA iterates, λ sweep, atoms, sparsity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import sdnet_cli as sd
from sdnet_cli.data.digits import load_digits
from sdnet_cli.layers import CSCConv2d
from sdnet_cli.layers import functional as SF
from sdnet_cli.viz import (
    atom_usage, csc_io, dictionary_grid, fista_iterates, hist_equalize, inverse_batchnorm, invert_features,
    lmbd_sweep, minmax, objective_curve, parse_what, psnr, sparsity_stats, stack_ops,
)
from sdnet_cli.viz.dictionary import atom_images
from sdnet_cli.viz.inversion import forward_ops, point_depth
from sdnet_cli.viz.lmbds import layer_settings

from csc_helpers import adjoint_decode, bn_inverse_by_hand, quick_step_sizes

DIGITS_MEAN, DIGITS_STD = 0.3054, 0.3185


def digits_batch(n: int) -> torch.Tensor:
    images, _ = load_digits("test")
    x = torch.from_numpy(images[:n]).permute(0, 3, 1, 2).float() / 255.0
    return (x - DIGITS_MEAN) / DIGITS_STD


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)


_MODELS: dict[str, nn.Module] = {}


def no_shortcut(stem_type: str = "cifar") -> nn.Module:
    """sdnet18_all without shortcut, random BN statistics, step sizes set (built once per stem_type)."""
    if stem_type not in _MODELS:
        torch.manual_seed(0)
        m = sd.create_model("sdnet18_all", num_classes=10, stem_type=stem_type, shortcut=False)
        randomize_bn(m)
        _MODELS[stem_type] = quick_step_sizes(m).eval()
    return _MODELS[stem_type]


# -- display ------------------------------------------------------------------------------------
def test_minmax_matches_numpy_per_image_and_channel() -> None:
    x = torch.randn(3, 2, 5, 4) * 3 + 1
    x[1, 1] = 7.0  # a constant channel
    got = minmax(x).numpy()
    a = x.numpy()
    for i in range(3):
        for c in range(2):
            lo, hi = a[i, c].min(), a[i, c].max()
            want = np.full_like(a[i, c], 0.5) if hi == lo else (a[i, c] - lo) / (hi - lo)
            np.testing.assert_allclose(got[i, c], want, atol=1e-6)


def test_hist_equalize_matches_cdf_formula() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 6, 7, generator=g) ** 3  # skewed towards dark values
    got = hist_equalize(x).numpy()
    q = np.round(x.numpy() * 255).astype(int)
    for i in range(2):
        for c in range(3):
            flat = np.sort(q[i, c].ravel())
            cdf = np.searchsorted(flat, q[i, c], side="right")  # pixels at or below each level
            cmin = np.searchsorted(flat, flat[0], side="right")
            want = (cdf - cmin) / (flat.size - cmin)
            np.testing.assert_allclose(got[i, c], want, atol=1e-6)
    # equalisation spreads a skewed image over the whole range: mean moves towards 1/2
    assert abs(got.mean() - 0.5) < abs(x.numpy().mean() - 0.5)


# -- inversion ----------------------------------------------------------------------------------
def test_inverse_batchnorm_is_exact() -> None:
    bn = nn.BatchNorm2d(5)
    randomize_bn(bn)
    bn.eval()
    x = torch.randn(2, 5, 4, 4)
    torch.testing.assert_close(inverse_batchnorm(bn, bn(x)), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stem_type,size", [("cifar", 16), ("imagenet", 32)])
def test_stack_chain_reproduces_the_model(stem_type: str, size: int) -> None:
    m = no_shortcut(stem_type)
    x = torch.randn(2, 3, size, size)
    ops = stack_ops(m)
    assert len([o for _, o in ops if isinstance(o, CSCConv2d)]) == len(sd.csc_layers(m))
    with torch.no_grad():
        torch.testing.assert_close(forward_ops(ops, x), m.forward_features(x))


def test_invert_stem_cifar_is_first_layer_decoding() -> None:
    m = no_shortcut("cifar")
    x = digits_batch(3)
    rec = csc_io(m, x, upto=1)[0]
    out = invert_features(m, x, ["layer0"])["layer0"]
    torch.testing.assert_close(out, adjoint_decode(rec.layer, rec.code, x.shape), atol=1e-4, rtol=1e-4)


def test_invert_imagenet_stem_goes_through_both_csc_layers() -> None:
    m = no_shortcut("imagenet")
    x = torch.randn(2, 3, 32, 32)
    first, second = csc_io(m, x, upto=2)
    with torch.no_grad():
        mid = adjoint_decode(second.layer, second.code, first.code.shape)
        want = adjoint_decode(first.layer, bn_inverse_by_hand(m.layer0[1], mid), x.shape)
    got = invert_features(m, x, ["layer0"])["layer0"]
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_invert_block_point_by_hand() -> None:
    m = no_shortcut("cifar")
    x = digits_batch(2)
    with torch.no_grad():
        h0 = m.layer0(x)
        h = m.layer1[0](h0)
        b = m.layer1[0]
        y = adjoint_decode(b.conv2, bn_inverse_by_hand(b.bn2, h), h0.shape)
        y = adjoint_decode(b.conv1, bn_inverse_by_hand(b.bn1, y), h0.shape)
        want = adjoint_decode(m.layer0[0], bn_inverse_by_hand(m.layer0[1], y), x.shape)
    got = invert_features(m, x, ["layer1.0", "layer0"])
    assert list(got) == ["layer1.0", "layer0"]
    torch.testing.assert_close(got["layer1.0"], want, atol=1e-4, rtol=1e-4)


def test_default_points_cover_stem_and_stages() -> None:
    m = no_shortcut("cifar")
    got = invert_features(m, digits_batch(2))
    assert list(got) == ["layer0", "layer1", "layer2", "layer3", "layer4"]
    assert all(v.shape == (2, 3, 16, 16) and torch.isfinite(v).all() for v in got.values())


@pytest.mark.parametrize("name,kwargs,needle", [
    ("resnet18", {}, "no CSC layer"),
    ("sdnet18", {}, "ordinary convolutions"),
    ("sdnet18_all", {"shortcut": True}, "residual shortcut"),
])
def test_stack_refuses_non_invertible_models(name: str, kwargs: dict, needle: str) -> None:
    m = sd.create_model(name, num_classes=10, **kwargs).eval()  # refused before any forward
    with pytest.raises(ValueError, match=needle):
        stack_ops(m)


def test_imagenet_sdnet18_stem_with_maxpool_is_refused() -> None:
    m = sd.create_model("sdnet18", num_classes=10, stem_type="imagenet").eval()
    with pytest.raises(ValueError, match="MaxPool2d"):
        stack_ops(m)


def test_unknown_point_lists_valid_ones() -> None:
    ops = stack_ops(no_shortcut())
    with pytest.raises(ValueError, match=r"unknown feature point 'layer9'.*valid: layer0, layer1, layer2"):
        point_depth(ops, "layer9")
    assert point_depth(ops, "layer0") == 2 and point_depth(ops, "layer1.0") == 6 and point_depth(ops, "layer1") == 10


# -- FISTA convergence -----------------------------------------------------------------------------
@pytest.mark.parametrize("stride,non_negative,mu", [(1, True, 0.0), (2, False, 0.3)])
def test_fista_iterates_are_the_unrolled_layers(stride: int, non_negative: bool, mu: float) -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 8, 3, stride=stride, padding=1, lmbd=0.05, mu=mu, non_negative=non_negative).eval()
    x = torch.randn(2, 3, 8, 8)
    layer(x)
    its = list(fista_iterates(layer, x, 7))
    assert len(its) == 7
    for k in (1, 2, 3, 7):
        want = SF.csc_fista(x, layer.weight, layer.step_size, 0.05, mu, k, non_negative, stride, 1)
        z, f = its[k - 1]
        torch.testing.assert_close(z, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(f, layer.objective(x, want).detach(), atol=1e-4, rtol=1e-5)


def test_objective_curve_against_the_layer_objective() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 16, 3, padding=1, lmbd=0.1, n_steps=2).eval()
    x = digits_batch(2)
    z2 = layer(x)
    curve = objective_curve(layer, x, max_steps=15, opt_steps=100)
    f = np.array(curve["objective"])
    assert len(f) == 15 and curve["trained_steps"] == 2
    assert f[1] == pytest.approx(float(layer.objective(x, z2).detach().mean()), rel=1e-5)
    assert curve["optimum"] <= f.min() and f[-1] < f[1] < f[0]
    assert 15 <= curve["optimum_steps"] <= 100
    assert curve["gap_at_trained"] == pytest.approx((f[1] - curve["optimum"]) / curve["optimum"], rel=1e-6)
    assert layer.n_steps == 2


# -- λ: faithfulness ------------------------------------------------------------------------------
def test_first_layer_decoding_is_faithful_as_lambda_vanishes() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 64, 3, padding=1, lmbd=0.1, n_steps=2).eval()  # overcomplete: 64 atoms vs 27 dims
    x = digits_batch(1)
    sweep = lmbd_sweep(layer, x, [1e-4, 0.05, 0.2, 1.0], n_steps=100, keep=1)
    # independent PSNR of the λ→0 decoding
    w = layer.weight.detach()
    z = SF.csc_fista(x, w, layer.step_size, 1e-4, 0.0, 100, True, 1, 1)
    dz = SF.dict_apply(z, w, 1, 1)
    mse = float((x - dz).pow(2).mean())
    peak = float(x.max() - x.min())
    assert 10 * np.log10(peak**2 / mse) >= 30.0
    assert sweep["psnr"][0] == pytest.approx(10 * np.log10(peak**2 / mse), rel=1e-3)
    err = sweep["sq_error"]
    assert all(a < b for a, b in zip(err, err[1:])), err  # decoding error grows with λ
    nz = sweep["nonzero_fraction"]
    assert all(a > b for a, b in zip(nz, nz[1:])), nz  # and the code gets sparser
    assert sweep["decoded"].shape == (4, 1, 3, 16, 16)
    assert layer.lmbd == 0.1 and layer.n_steps == 2  # restored


def test_layer_settings_restore_on_error() -> None:
    layer = CSCConv2d(3, 4, 3, lmbd=0.3, n_steps=2)
    with pytest.raises(RuntimeError):
        with layer_settings(layer, 1.0, 9):
            assert layer.lmbd == 1.0 and layer.n_steps == 9
            raise RuntimeError
    assert layer.lmbd == 0.3 and layer.n_steps == 2


def test_psnr_formula() -> None:
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert float(psnr(x, x + 0.1)[0]) == pytest.approx(10 * np.log10(9 / 0.01), rel=1e-5)


def test_lmbd_sweep_rejects_negative_lmbd() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        lmbd_sweep(CSCConv2d(3, 4, 3).eval(), torch.randn(1, 3, 8, 8), [0.1, -1.0])


# -- atoms and sparsity ---------------------------------------------------------------------------
def test_atom_usage_and_grid_order() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 6, 3, padding=1).eval()
    code = torch.zeros(2, 6, 4, 4)
    code[:, 4] = 1.0          # atom 4 everywhere
    code[0, 1, :2] = 2.0      # atom 1 on 8 of 32 positions
    code[1, 2, 0, 0] = 0.5    # atom 2 once
    usage = atom_usage(code)
    torch.testing.assert_close(usage, torch.tensor([0, 8 / 32, 1 / 32, 0, 1.0, 0]))
    grid, order, _ = dictionary_grid(layer, code, cols=3)
    assert order[:3].tolist() == [4, 1, 2]
    tiles = atom_images(layer).numpy()
    np.testing.assert_allclose(grid[1:4, 1:4], tiles[4])  # first tile = most used atom
    assert grid.shape == (2 * 4 + 1, 3 * 4 + 1, 3)
    assert tiles.min() == 0.0 and tiles.max() == 1.0


def test_sparsity_stats_against_counts() -> None:
    m = no_shortcut()
    x = digits_batch(3)
    records = csc_io(m, x)
    rows = sparsity_stats(records, bins=10)
    assert [r["layer"] for r in rows] == [n for n, mod in m.named_modules() if isinstance(mod, CSCConv2d)]
    for r, rec in zip(rows, records):
        nz = int((rec.code != 0).sum())
        assert r["nonzero_fraction"] == pytest.approx(nz / rec.code.numel())
        assert sum(r["histogram"]["counts"]) == nz
        assert r["nonzero_fraction_min"] <= r["nonzero_fraction"] <= r["nonzero_fraction_max"]


def test_parse_what() -> None:
    assert parse_what("all") == ["dictionary", "features", "sparsity", "convergence", "lambda"]
    assert parse_what("lambda, dictionary") == ["dictionary", "lambda"]
    with pytest.raises(ValueError, match="unknown --what item.*'atoms'.*valid: dictionary, features, sparsity"):
        parse_what("dictionary,atoms")

"""Generated CIFAR-C corruptions: dtype/shape, seeding, severity ordering, noise statistics, registry."""

from __future__ import annotations

import numpy as np
import pytest

from sdnet_cli.data.corruptions import (ALL, BENCHMARK, GROUPS, SDNET_LEVELS, FrostUnavailable, corrupt,
                                        frost_available, parse_corruptions, parse_severities, sdnet_noise)
from sdnet_cli.data.corruptions import _util

GENERATED = [n for n in ALL if n != "frost" or frost_available()]
# The original CIFAR-C parameters are not ordered by pixel change for these (e.g. saturate desaturates at
# severities 1-2 and oversaturates at 3-5; elastic's severity 1 is a larger affine shift than severity 5;
# frost scales the image by 1, 1, .9, .85, .75 while the texture weight grows .2 … .45).
NOT_MONOTONE = {"glass_blur", "motion_blur", "elastic_transform", "spatter", "saturate", "frost"}


def colour_images(n: int = 6, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth, colourful uint8 test images (N, H, W, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for _ in range(n):
        a = rng.uniform(0, 1, (3, 3))
        out.append(np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (3 * a[c, 0] * xx + 3 * a[c, 1] * yy) + 6 * a[c, 2])
                             for c in range(3)], -1))
    return (np.stack(out) * 255).astype(np.uint8)


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def test_registry_groups() -> None:
    assert len(ALL) == 19 and len(BENCHMARK) == 15 and len(set(ALL)) == 19
    assert parse_corruptions("all") == list(ALL)
    assert parse_corruptions("benchmark") == list(BENCHMARK)
    assert parse_corruptions("noise") == ["gaussian_noise", "shot_noise", "impulse_noise"]
    assert parse_corruptions("extra,fog,fog") == list(GROUPS["extra"]) + ["fog"]
    assert sum(len(v) for v in GROUPS.values()) == 19


def test_unknown_corruption_lists_valid_names() -> None:
    with pytest.raises(ValueError) as e:
        parse_corruptions("gausian_noise")
    msg = str(e.value)
    assert "gaussian_noise" in msg and "valid:" in msg and "jpeg_compression" in msg


@pytest.mark.parametrize("spec,expected", [("1-5", [1, 2, 3, 4, 5]), ("3,5", [3, 5]), ("2", [2]), ("1-2,5", [1, 2, 5])])
def test_parse_severities(spec: str, expected: list[int]) -> None:
    assert parse_severities(spec) == expected


@pytest.mark.parametrize("spec", ["0", "6", "1-6", "a", "3-1", ""])
def test_parse_severities_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="severit"):
        parse_severities(spec)


@pytest.mark.parametrize("name", GENERATED)
def test_uint8_shape_seeded_and_size_generic(name: str) -> None:
    for h, w in ((16, 16), (32, 32), (24, 20)):
        x = colour_images(3, h, w)
        y = corrupt(x, name, 3, seed=7)
        assert y.dtype == np.uint8 and y.shape == x.shape
        assert np.array_equal(y, corrupt(x, name, 3, seed=7)), "same seed must give the same images"
        assert not np.array_equal(y, x), "the corruption must change the images"
    x = colour_images(3)
    random_ones = {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
                   "snow", "frost", "fog", "spatter", "elastic_transform"}
    if name in random_ones:
        assert not np.array_equal(corrupt(x, name, 3, seed=1), corrupt(x, name, 3, seed=2))


@pytest.mark.parametrize("name", GENERATED)
def test_change_grows_with_severity(name: str) -> None:
    x = colour_images(8)
    d = [change(corrupt(x, name, s, seed=3), x) for s in range(1, 6)]
    assert all(v > 0 for v in d)
    if name not in NOT_MONOTONE:
        assert all(np.diff(d) > 0), d
    elif name in ("glass_blur", "motion_blur", "spatter", "frost"):
        assert d[4] > d[0], d
    if name == "motion_blur":
        assert all(np.diff(d) >= -1e-9), d


def test_frost_is_skipped_not_faked(monkeypatch) -> None:
    """Without the imagecorruptions distribution frost says what to install; it never fakes textures."""
    from importlib import metadata

    from sdnet_cli.data.corruptions import weather

    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    weather._frost_textures.cache_clear()
    monkeypatch.setattr(weather.metadata, "distribution", missing)
    try:
        assert not frost_available()
        with pytest.raises(FrostUnavailable, match="pip install imagecorruptions"):
            corrupt(colour_images(1), "frost", 1)
    finally:
        weather._frost_textures.cache_clear()


def test_frost_refuses_images_larger_than_its_textures() -> None:
    if not frost_available():
        pytest.skip("imagecorruptions is not installed here")
    assert corrupt(colour_images(1, 62, 62), "frost", 1).shape == (1, 62, 62, 3)
    with pytest.raises(ValueError, match="at most 62x104"):
        corrupt(colour_images(1, 64, 64), "frost", 1)


def test_frost_textures_read_without_importing_imagecorruptions() -> None:
    """imagecorruptions 1.1.2 imports pkg_resources (gone in setuptools >= 81): we read its files instead."""
    import importlib.metadata
    import sys

    try:
        importlib.metadata.distribution("imagecorruptions")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("imagecorruptions is not installed here")
    from sdnet_cli.data.corruptions import weather

    weather._frost_textures.cache_clear()
    assert frost_available() and "imagecorruptions" not in sys.modules
    assert [t.dtype for t in weather._frost_textures()] == [np.uint8] * 5


def test_bad_arguments() -> None:
    x = colour_images(1)
    with pytest.raises(ValueError, match="1-5"):
        corrupt(x, "fog", 6)
    with pytest.raises(ValueError, match="1-5"):
        corrupt(x, "fog", 0)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(x.astype(np.float32), "fog", 1)
    with pytest.raises(ValueError, match="valid"):
        corrupt(x, "nope", 1)


def grey(value: int = 128, n: int = 40, size: int = 32) -> np.ndarray:
    return np.full((n, size, size, 3), value, dtype=np.uint8)


@pytest.mark.parametrize("severity,sigma", list(enumerate((0.04, 0.06, 0.08, 0.09, 0.10), start=1)))
def test_gaussian_sigma_matches_table(severity: int, sigma: float) -> None:
    x = grey()
    y = corrupt(x, "gaussian_noise", severity, seed=severity)
    measured = (y.astype(np.float64) - x).std() / 255.0
    assert abs(measured - sigma) / sigma < 0.10


@pytest.mark.parametrize("severity,rate", list(enumerate((500, 250, 100, 75, 50), start=1)))
def test_shot_noise_poisson_std(severity: int, rate: int) -> None:
    x = grey()
    y = corrupt(x, "shot_noise", severity, seed=severity).astype(np.float64) / 255.0
    p = 128 / 255.0
    expected = np.sqrt(p / rate)  # std of Poisson(p·c)/c
    assert abs(y.std() - expected) / expected < 0.10
    assert abs(y.mean() - p) < 0.01


@pytest.mark.parametrize("severity,amount", list(enumerate((0.01, 0.02, 0.03, 0.05, 0.07), start=1)))
def test_impulse_fraction(severity: int, amount: float) -> None:
    x = grey()
    y = corrupt(x, "impulse_noise", severity, seed=severity)
    hit = y != x
    assert abs(hit.mean() - amount) / amount < 0.10
    assert set(np.unique(y[hit])) <= {0, 255}
    assert abs((y[hit] == 255).mean() - 0.5) < 0.1


@pytest.mark.parametrize("severity,sigma", list(enumerate((0.06, 0.10, 0.12, 0.16, 0.20), start=1)))
def test_speckle_relative_sigma(severity: int, sigma: float) -> None:
    x = grey(100)
    y = corrupt(x, "speckle_noise", severity, seed=severity).astype(np.float64)
    measured = ((y - x) / x).std()
    assert abs(measured - sigma) / sigma < 0.10


def test_sdnet_noise_levels() -> None:
    """The official robust_inference.py's np.arange levels, floating-point tails included."""
    assert len(SDNET_LEVELS["gaussian_noise"]) == 10 and SDNET_LEVELS["gaussian_noise"][0] == 0.02
    assert SDNET_LEVELS["gaussian_noise"][-1] == 0.19999999999999998
    assert SDNET_LEVELS["shot_noise"] == tuple(float(v) for v in range(60, 0, -6))
    assert len(SDNET_LEVELS["speckle_noise"]) == 6 and SDNET_LEVELS["speckle_noise"][2] == 0.30000000000000004
    assert len(SDNET_LEVELS["impulse_noise"]) == 10 and SDNET_LEVELS["impulse_noise"][-1] == 0.30000000000000004
    x = grey()
    y = sdnet_noise(x, "gaussian_noise", 10, np.random.default_rng(0))
    assert abs((y.astype(np.float64) - x).std() / 255.0 - 0.20) / 0.20 < 0.10
    with pytest.raises(ValueError, match="levels 1-6"):
        sdnet_noise(x, "speckle_noise", 7, np.random.default_rng(0))


@pytest.mark.parametrize("angle,axis", [(0.0, (0, -1)), (90.0, (-1, 0)), (180.0, (0, 1)), (-90.0, (1, 0))])
def test_motion_kernel_profile(angle: float, axis: tuple[int, int]) -> None:
    """ImageMagick reads ahead: out(p) = Σ kᵢ x(p + i·u), so a bright pixel spreads *against* u, with
    weights ∝ exp(−i²/2σ²) truncated to 8 bits (ImageMagick's Q16 round, then q // 257)."""
    x = np.zeros((1, 15, 15, 1), dtype=np.uint8)
    x[0, 7, 7] = 255
    y = _util.motion_blur(x, radius=3, sigma=2.0, angle_deg=angle)[0, ..., 0]
    w = np.exp(-np.arange(7) ** 2 / 8.0)
    expected = np.floor(np.floor(255 * 257 * w / w.sum() + 0.5) / 257)
    dr, dc = axis
    got = [y[7 + dr * i, 7 + dc * i] for i in range(7)]
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(y) == np.count_nonzero(expected)


def test_helpers() -> None:
    k = _util.disk_kernel(1.5, 0.1)
    assert k.shape == (17, 17) and k.sum() == pytest.approx(1.0)
    p = _util.plasma_fractal(20, 2.0, np.random.default_rng(0))
    assert p.shape == (32, 32) and p.min() == 0.0 and p.max() == 1.0
    z = _util.clipped_zoom(np.random.default_rng(0).random((2, 16, 16, 3)), 1.2)
    assert z.shape == (2, 16, 16, 3)

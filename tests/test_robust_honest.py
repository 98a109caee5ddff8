"""Issue 14: noise in the model's channel space, levels per protocol, the λ fit's quality and fallback,
adaptive vs non-adaptive attacks on the per-sample λ, gradient-masking checks (and a masked model that
trips them), BatchNorm re-estimation that never sees test images, selection in reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from sdnet_cli.data.corruptions import corrupt
from sdnet_cli.data.digits import load_digits
from sdnet_cli.data.splits import train_val_indices
from sdnet_cli.errors import UsageError
from sdnet_cli.models.files import ModelConfig, load_model_dir
from sdnet_cli.robust.adversarial import AttackSpec, attack_rows, correct_under, run_checks, targets
from sdnet_cli.robust.attacked import AdaptiveRule, AttackedModel, FixedLmbd, straight_through_clip
from sdnet_cli.robust.bn import bn_stats, recalibrated_stats, stats_digest
from sdnet_cli.robust.conditions import iter_conditions, parse_levels
from sdnet_cli.robust.accuracy import tensor_accuracy, to_input, to_pixels
from sdnet_cli.robust.lmbd_fit import Calibration, LmbdFit, calibrate, fit_quality, not_informative
from sdnet_cli.robust.options import RobustOptions
from sdnet_cli.robust.run import held_out_images, selection


def _model_and_test_set(model_dir):
    model, config = load_model_dir(model_dir)
    model.requires_grad_(False)
    x, y = load_digits("test", int(config.metrics.get("image_size", 8)))
    return model, config, x, y


@pytest.fixture(scope="module")
def digits(digits_model_dir):
    return _model_and_test_set(digits_model_dir)


@pytest.fixture(scope="module")
def narrow(digits_narrow_model_dir):
    """sdnet18 at width 16: the attack suites' CI-sized model (1/16 of the FLOPs)."""
    return _model_and_test_set(digits_narrow_model_dir)


# -- noise in the model's own channel space, levels per protocol ---------------------------------------
@pytest.mark.parametrize("severity", [1, 5])
def test_grey_noise_matches_the_table(severity: int) -> None:
    from sdnet_cli.data.corruptions.noise import GAUSSIAN, IMPULSE

    rgb = np.full((64, 16, 16, 3), 128, np.uint8)
    grey = next(c for c in iter_conditions({"gaussian_noise": (severity,)}, clean=(rgb, np.zeros(64, np.int64)),
                                           channels=1) if c.corruption != "clean").images
    assert grey.shape == (64, 16, 16, 1)
    noise = grey.astype(np.float64) / 255 - 128 / 255
    assert noise.std() == pytest.approx(GAUSSIAN[severity - 1], rel=0.05)  # one draw per grey pixel, not 3 averaged
    imp = corrupt(rgb[..., :1], "impulse_noise", severity, seed=1)
    assert set(np.unique(imp)) <= {0, 128, 255}  # salt and pepper stay salt and pepper in grey
    assert np.mean(imp != 128) == pytest.approx(IMPULSE[severity - 1], rel=0.15)


def test_levels_per_protocol() -> None:
    noises = ["gaussian_noise", "shot_noise", "speckle_noise", "impulse_noise"]
    levels = parse_levels("all", noises, "sdnet-noise")
    assert {k: len(v) for k, v in levels.items()} == {"gaussian_noise": 10, "shot_noise": 10, "speckle_noise": 6,
                                                      "impulse_noise": 10}
    assert parse_levels(None, noises, "sdnet-noise") == levels
    per = parse_levels("impulse_noise=1-9;gaussian_noise=2,4", noises, "sdnet-noise")
    assert per["impulse_noise"] == tuple(range(1, 10)) and per["gaussian_noise"] == (2, 4)
    assert per["shot_noise"] == tuple(range(1, 11))
    with pytest.raises(UsageError, match="speckle_noise has levels 1-6"):
        parse_levels("1-7", ["gaussian_noise", "speckle_noise"], "sdnet-noise")
    assert RobustOptions(models=("m",), protocol="sdnet-noise", severities="all").levels() == levels


# -- the per-sample λ fit ----------------------------------------------------------------------------
def test_fit_quality_and_informative() -> None:
    r = np.array([1.0, 2.0, 3.0, 4.0])
    q = fit_quality(r, 0.2 * r + 0.1, 0.2, 0.1)
    assert q["r2"] == pytest.approx(1.0) and q["rms_residual"] == pytest.approx(0.0, abs=1e-12)
    pts = lambda rs, bs: [{"noise": "clean" if i == 0 else "gaussian_noise", "recon_error": a, "best_lambda": b}  # noqa: E731
                          for i, (a, b) in enumerate(zip(rs, bs))]
    assert not_informative(pts([1, 2, 3], [0.1, 0.3, 0.5]), 0.2, 1.0) is None
    assert "does not grow with the noise" in not_informative(pts([3, 2, 1], [0.5, 0.3, 0.1]), -0.2, 1.0)
    assert "every noise level" in not_informative(pts([1, 2, 3], [0.2, 0.2, 0.2]), 0.0, 0.0)
    assert "slope" in not_informative(pts([1, 2, 3], [0.5, 0.3, 0.1]), -0.2, 1.0)


def test_uninformative_fit_falls_back_to_training_lambda(digits, tmp_path: Path) -> None:
    model, config, x, y = digits
    # built to be uninformative: every calibration "noise" is the clean image, so r never changes
    plan = Calibration([0.1, 0.6], 0.1, noises=(("clean", 0.0), ("clean", 0.0), ("clean", 0.0)))
    fit = calibrate(model, x[:32], y[:32], config.mean, config.std, plan)
    assert fit.fallback and "not informative" in fit.fallback and "0.1" in fit.fallback
    np.testing.assert_allclose(fit.predict(np.array([0.0, 50.0, 1e6])), 0.1)
    assert set(fit.quality) >= {"r2", "rms_residual", "residuals"}
    assert LmbdFit.load(fit.save(tmp_path / "lambda_fit.json")) == fit


# -- attacks on the per-sample λ, masking checks ----------------------------------------------------------
def _rule(model, config, x) -> LmbdFit:
    """A rule whose λ spans [0.1, 1] over these images (slope from their own reconstruction errors)."""
    r = tensor_accuracy(model, to_input(x, config.mean, config.std), np.zeros(len(x), np.int64), 0.1).recon
    lo, hi = np.percentile(r, [10, 90])
    slope = 0.9 / (hi - lo)
    return LmbdFit(float(slope), float(0.1 - slope * lo), 0.1, 0.1, 1.0)


def test_straight_through_clip_passes_gradient() -> None:
    v = torch.tensor([-1.0, 0.5, 3.0], requires_grad=True)
    out = straight_through_clip(v, 0.0, 1.0)
    out.sum().backward()
    assert out.tolist() == [0.0, 0.5, 1.0] and v.grad.tolist() == [1.0, 1.0, 1.0]


def test_adaptive_attack_is_at_least_as_strong(digits) -> None:
    model, config, x, y = digits
    x, y = x[:100], y[:100]
    fit = _rule(model, config, x)
    pixels, labels = to_pixels(x, 3), torch.as_tensor(y)
    frozen = torch.as_tensor(fit.predict(tensor_accuracy(model, to_input(x, config.mean, config.std), y, 0.1).recon),
                             dtype=torch.float32)
    tgts = [t for t in targets(0.1, [], fit, pixels, frozen, "first", "pgd-linf") if t.mode == "auto"]
    spec = AttackSpec("pgd-linf", "linf", 10, None, 0, 100, checks=False)
    rows, _ = attack_rows(model, config.mean, config.std, pixels, labels, [4 / 255], spec, tgts)
    non_adaptive, adaptive = (next(r for r in rows if r["adaptive"] is flag) for flag in (False, True))
    # guarded: at 0 % (or 100 %) for both the comparison says nothing
    assert 0 < non_adaptive["accuracy"] < 100, rows
    assert adaptive["accuracy"] <= non_adaptive["accuracy"], rows
    # the rows score the defence as it runs: λ recomputed from each image (independent computation, clean ε=0)
    clean_rows, _ = attack_rows(model, config.mean, config.std, pixels, labels, [0.0], spec, tgts[1:])
    xin = to_input(x, config.mean, config.std)
    lam = fit.predict(tensor_accuracy(model, xin, y, 0.1).recon)
    assert clean_rows[0]["accuracy"] == pytest.approx(tensor_accuracy(model, xin, y, lam).accuracy)


def test_adaptive_gradient_flows_through_lambda(digits) -> None:
    """The adaptive model's input gradient equals finite differences of the whole defence (λ(u) included), and
    differs from the gradient with λ held at its value: the attack really differentiates through λ."""
    import copy

    model, config, x, y = digits
    fit = _rule(model, config, x[:100])
    m64 = copy.deepcopy(model).double()
    adaptive = AttackedModel(m64, config.mean, config.std, AdaptiveRule(fit)).double()
    u = to_pixels(x[:100], 3).double()
    with torch.no_grad():
        lam = adaptive.lmbd_for(u, (u - adaptive.mean) / adaptive.std).flatten()
    inside = ((lam > fit.lmbd_min + 0.05) & (lam < fit.lmbd_max - 0.05)).nonzero().flatten()[:4]
    assert len(inside) == 4, lam  # the clip is straight-through; compare where it is not active
    u, lam = u[inside], lam[inside]
    frozen = AttackedModel(m64, config.mean, config.std, FixedLmbd(lam.view(-1, 1, 1, 1))).double()
    v = torch.randn(u.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.as_tensor(y[inside.numpy()])

    def loss(net, w):
        return nn.functional.cross_entropy(net(w), labels, reduction="sum")

    def directional(net):
        w = u.clone().requires_grad_(True)
        loss(net, w).backward()
        return float((w.grad * v).sum())

    h = 1e-6
    with torch.no_grad():
        fd = float(loss(adaptive, u + h * v) - loss(adaptive, u - h * v)) / (2 * h)
    g_adaptive, g_frozen = directional(adaptive), directional(frozen)
    assert g_adaptive == pytest.approx(fd, rel=1e-4, abs=1e-8)
    assert abs(g_adaptive - g_frozen) > 1e-3 * abs(fd), (g_adaptive, g_frozen, fd)


class Quantised(nn.Module):
    """A deliberately masked model: pixels rounded to 1/255 in front (a zero gradient everywhere)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(u * 255) / 255)


@pytest.mark.slow
def test_masking_checks_hold_and_a_masked_model_trips_them(narrow) -> None:
    model, config, x, y = narrow
    pixels, labels = to_pixels(x[:64], 3), torch.as_tensor(y[:64])
    honest = AttackedModel(model, config.mean, config.std, FixedLmbd(0.1))
    spec = AttackSpec("pgd-linf", "linf", 5, None, 0, 64, checks=True)
    pgd = 100 * correct_under(honest, pixels, labels, 64).mean()
    ok = run_checks(honest, honest, pixels, labels, 16 / 255, spec, pgd)
    assert ok["passed"], ok
    masked = Quantised(honest)
    bad = run_checks(masked, masked, pixels, labels, 16 / 255, spec, pgd)
    assert not bad["passed"], bad
    assert {c["name"] for c in bad["checks"] if not c["passed"]} & {"black_box", "large_eps"}


# -- BatchNorm re-estimation, selection -----------------------------------------------------------------------
def test_bn_recalibration_uses_only_held_out_images(digits) -> None:
    model, config, x, y = digits
    held = to_input(load_digits("train", x.shape[1])[0][:40], config.mean, config.std)
    before = bn_stats(model)
    a = recalibrated_stats(model, held, 1.0)
    assert stats_digest(bn_stats(model)) == stats_digest(before), "the model must be left as trained"
    assert stats_digest(a) != stats_digest(before)
    assert stats_digest(recalibrated_stats(model, held, 1.0)) == stats_digest(a), "a function of the held-out images"


def test_selection_and_held_out_images() -> None:
    assert selection(ModelConfig("sdnet18", 10), Path("m/best"))["text"].startswith("unknown selection")
    cfg = ModelConfig("sdnet18", 10, dataset="digits",
                      metrics={"checkpoint": "best", "selected_on": "val", "val_split": 0.1, "seed": 3})
    assert "validation split" in selection(cfg, Path("m/best"))["text"]
    opts = RobustOptions(models=("m",))
    (images, labels), source = held_out_images(cfg, "digits", opts, 8)
    tx, ty = load_digits("train", 8)
    idx = train_val_indices(len(ty), 0.1, 3)[1]
    assert np.array_equal(images, tx[idx]) and np.array_equal(labels, ty[idx]) and source.startswith("validation")
    (_, labels2), source2 = held_out_images(ModelConfig("sdnet18", 10, dataset="digits"), "digits", opts, 8)
    assert len(labels2) == len(ty) and "not held out" in source2


def test_bn_and_library_call_in_results(digits_model_dir, tmp_path: Path) -> None:
    from sdnet_cli.robust import run

    base = dict(models=(str(digits_model_dir),), corruptions="gaussian_noise", severities="5", lmbds=(0.1, 1.0),
                recalibrate_bn=32, plots=False)
    one = run(RobustOptions(**base, max_images=20, output=tmp_path / "a"))
    two = run(RobustOptions(**{**base, "corruptions": "impulse_noise"}, max_images=30, seed=4, output=tmp_path / "b"))
    h1, h2 = (r.models[0]["bn_recalibration"]["stats_sha256"] for r in (one, two))
    assert h1 == h2 and set(h1) == {"0.1", "1.0"}, "BN statistics must not depend on the test images"
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert any(r.get("bn") == "recalibrated" for r in saved["results"]) and "summary_bn" in saved
    assert saved["selection"]["text"]

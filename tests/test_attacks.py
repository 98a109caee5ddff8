"""PGD/FGSM: stay in the ε-ball and in [0, 1], and lower a trained model's accuracy as ε grows; the attacked
model normalises inside and holds the defence's λ."""

from __future__ import annotations

import os

import json
from pathlib import Path

import pytest
import torch

from sdnet_cli.data.digits import load_digits
from sdnet_cli.models.files import load_model_dir
from sdnet_cli.robust.attacked import AttackedModel, FixedLmbd
from sdnet_cli.robust.attacks import fgsm_attack, parse_eps, pgd_attack, project


def trained_size(model_dir) -> int:
    """Image size the model was trained at (``metrics.image_size``; the session fixture trains at 16)."""
    return int(json.loads((Path(model_dir) / "config.json").read_text()).get("metrics", {}).get("image_size", 16))


@pytest.fixture(scope="module")
def trained(digits_model_dir):
    model, config = load_model_dir(digits_model_dir)
    x, y = load_digits("test", trained_size(digits_model_dir))
    pixels = torch.from_numpy(x[:32]).permute(0, 3, 1, 2).float() / 255.0
    return AttackedModel(model, config.mean, config.std, FixedLmbd(None)), config, pixels, torch.from_numpy(y[:32])


def accuracy(attacked, config, pixels, labels) -> float:
    """Accuracy computed outside the wrapper: normalise by hand, call the bare model."""
    m = torch.tensor(config.mean).view(1, -1, 1, 1)
    s = torch.tensor(config.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return float((attacked.model((pixels - m) / s).argmax(1) == labels).float().mean())


@pytest.mark.parametrize("norm", ["pgd-linf", "pgd-l2"])
def test_pgd_stays_in_ball_and_range(trained, norm: str) -> None:
    model, config, pixels, labels = trained
    eps = 8 / 255 if norm == "pgd-linf" else 0.5
    adv = pgd_attack(model, pixels[:8], labels[:8], eps, steps=2, norm=norm,
                     generator=torch.Generator().manual_seed(0))
    delta = (adv - pixels[:8]).flatten(1)
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    if norm == "pgd-linf":
        assert delta.abs().max() <= eps + 1e-6
    else:
        assert delta.norm(dim=1).max() <= eps * (1 + 1e-5)
    assert delta.abs().max() > 0
    assert not model.training


def test_pgd_lowers_accuracy_as_eps_grows(trained) -> None:
    model, config, pixels, labels = trained
    accs = []
    for eps in (0.0, 4 / 255, 32 / 255):
        adv = pgd_attack(model, pixels, labels, eps, steps=3, generator=torch.Generator().manual_seed(0))
        accs.append(accuracy(model, config, adv, labels))
    assert accs[0] == pytest.approx(accuracy(model, config, pixels, labels))
    assert accs[0] > 0.8
    assert all(b <= a + 1e-9 for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] < accs[0] - 0.3, accs
    adv = fgsm_attack(model, pixels, labels, 32 / 255)
    assert (adv - pixels).abs().max() <= 32 / 255 + 1e-6
    assert accuracy(model, config, adv, labels) < accs[0]


def test_projection() -> None:
    clean = torch.full((2, 3, 4, 4), 0.5)
    far = clean + torch.randn(2, 3, 4, 4)
    p = project(far, clean, 0.1, "pgd-linf")
    assert (p - clean).abs().max() <= 0.1 + 1e-7
    p2 = project(far, clean, 0.3, "pgd-l2")
    assert (p2 - clean).flatten(1).norm(dim=1).max() <= 0.3 + 1e-6
    inside = clean + 0.01
    assert torch.allclose(project(inside, clean, 0.1, "pgd-linf"), inside)


def test_parse_eps() -> None:
    assert parse_eps("8/255") == [8 / 255]
    assert parse_eps("0,0.01,2/255") == [0.0, 0.01, 2 / 255]
    for bad in ("x", "-1", "1/0", "", "nan", "inf"):
        with pytest.raises(ValueError, match="eps"):
            parse_eps(bad)
    with pytest.raises(ValueError, match="unknown attack"):
        pgd_attack(torch.nn.Identity(), torch.zeros(1, 3, 2, 2), torch.zeros(1, dtype=torch.long), 0.1, norm="fgsm")


@pytest.mark.slow
@pytest.mark.parametrize("fixture", [
    "digits_narrow_model_dir",
    pytest.param("digits_model_dir", marks=pytest.mark.skipif(
        os.environ.get("SDNET_FULL_AUTOATTACK") != "1",
        reason="the standard suite against full-width sdnet18 takes over 30 min on 2 CPU cores; "
               "run with SDNET_FULL_AUTOATTACK=1")),
])
def test_autoattack_standard_not_weaker_than_our_pgd_and_checks_hold(fixture: str, request) -> None:
    """Acceptance (issue 14): AutoAttack-standard at ε = 8/255 on 100 digits images on CPU; robust accuracy
    <= our PGD's on the same images, and every gradient-masking check holds. In CI on sdnet18 at width 16 (the
    same architecture at 1/16 of the FLOPs); the full-width model on request."""
    pytest.importorskip("pyautoattack")
    from sdnet_cli.robust.adversarial import AttackSpec, attack_rows, targets

    digits_model_dir = request.getfixturevalue(fixture)
    model, config = load_model_dir(digits_model_dir)
    model.requires_grad_(False)
    x, y = load_digits("test", trained_size(digits_model_dir))
    pixels, labels = torch.from_numpy(x[:100]).permute(0, 3, 1, 2).float() / 255.0, torch.from_numpy(y[:100])
    tgts = targets(0.1, [], None, pixels, None, "first", "autoattack")
    aa, checks = attack_rows(model, config.mean, config.std, pixels, labels, [8 / 255],
                             AttackSpec("autoattack", "linf", 10, None, 0, 100, checks=True), tgts)
    pgd, _ = attack_rows(model, config.mean, config.std, pixels, labels, [8 / 255],
                         AttackSpec("pgd-linf", "linf", 10, None, 0, 100, checks=False), tgts)
    assert aa[0]["n"] == 100
    assert aa[0]["accuracy"] <= pgd[0]["accuracy"], (aa, pgd)
    assert checks and checks[0]["passed"], checks
    assert {c["name"] for c in checks[0]["checks"]} == {"large_eps", "more_steps", "black_box", "single_step"}

"""Each attack row attacks the defence it names: the adaptive row is PGD against the per-sample λ rule itself
(λ(u) recomputed from every perturbed image), the non-adaptive row PGD against λ frozen on the clean images.
Checked against the same PGD crafted directly on ``AttackedModel`` with each defence (the pieces wired by hand),
so a row that attacks another defence (a fixed λ, the frozen rule for both) fails."""

from __future__ import annotations

import numpy as np
import torch

from sdnet_cli.data.digits import load_digits
from sdnet_cli.models.files import load_model_dir
from sdnet_cli.robust.accuracy import tensor_accuracy, to_input, to_pixels
from sdnet_cli.robust.adversarial import AttackSpec, attack_rows, correct_under, craft, targets
from sdnet_cli.robust.attacked import AdaptiveRule, AttackedModel, FrozenRule
from sdnet_cli.robust.lmbd_fit import LmbdFit


def test_each_row_attacks_its_own_defence(digits_model_dir) -> None:
    model, config = load_model_dir(digits_model_dir)
    model.requires_grad_(False)
    x, y = load_digits("test", int(config.metrics.get("image_size", 8)))
    x, y = x[:100], y[:100]
    # a rule whose λ spans [0.1, 1] over these images (slope from their own reconstruction errors)
    r = tensor_accuracy(model, to_input(x, config.mean, config.std), np.zeros(len(x), np.int64), 0.1).recon
    lo, hi = np.percentile(r, [10, 90])
    fit = LmbdFit(float(0.9 / (hi - lo)), float(0.1 - 0.9 / (hi - lo) * lo), 0.1, 0.1, 1.0)
    pixels, labels = to_pixels(x, 3), torch.as_tensor(y)
    frozen = torch.as_tensor(fit.predict(r), dtype=torch.float32)
    tgts = [t for t in targets(0.1, [], fit, pixels, frozen, "first", "pgd-linf") if t.mode == "auto"]
    spec = AttackSpec("pgd-linf", "linf", 10, None, 0, 100, checks=False)
    eps = 4 / 255
    rows, _ = attack_rows(model, config.mean, config.std, pixels, labels, [eps], spec, tgts)

    scoring = AttackedModel(model, config.mean, config.std, AdaptiveRule(fit))  # the defence as it runs
    by_hand = {}
    for adaptive, defence in ((True, AdaptiveRule(fit)), (False, FrozenRule(pixels, frozen, fit.layers))):
        adv, _ = craft(AttackedModel(model, config.mean, config.std, defence), pixels, labels, "pgd-linf", eps, spec)
        by_hand[adaptive] = 100.0 * float(correct_under(scoring, adv, labels, spec.batch_size).mean())
    assert by_hand[True] != by_hand[False], "the two attacks must score differently for this test to see a swap"
    assert {row["adaptive"]: row["accuracy"] for row in rows} == by_hand, (rows, by_hand)

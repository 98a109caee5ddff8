"""timm's model API on sdnet models (issue 24): heads, pooling, features, intermediates, a converted timm model.

Each expectation is computed independently of the API under test: stage by stage through ``stages()``,
pooling by ``mean``/``amax``, the classifier by ``F.linear`` on the stored weights. Widths are 16 and
inputs small so every test takes seconds.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models import FeatureListNet
from timm.models._manipulate import group_parameters

import sdnet_cli as sd
import sdnet_cli.timm  # noqa: F401 - registers the sdnet models with timm
from sdnet_cli.data import datasets
from sdnet_cli.errors import UsageError
from sdnet_cli.layers import csc_layers
from sdnet_cli.models.timm_cfg import STEM_MEAN_STD

W = 16  # first-stage width: stages 16, 32, 64, 128


def _x(size: int = 16, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _stages(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    outs = []
    for stage in model.stages():
        x = stage(x)
        outs.append(x)
    return outs


@pytest.mark.parametrize("name", ["sdnet18", "sdnet18_all"])
def test_heads_pooled_unpooled_and_pre_logits(name: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, width=W).eval()
    x = _x()
    with torch.no_grad():
        feats = _stages(model, x)[-1]
        assert torch.equal(model.forward_features(x), feats) and feats.shape == (2, 8 * W, 2, 2)
        pooled = feats.mean((2, 3))
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), pooled)
        torch.testing.assert_close(model(x), F.linear(pooled, model.linear.weight, model.linear.bias))
        assert model.num_features == model.head_hidden_size == 8 * W and model.get_classifier() is model.linear
        assert model.get_classifier(name_only=True) == "linear"

        headless = timm.create_model(name, num_classes=0, width=W).eval()
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("linear.")}
        headless.load_state_dict(state)  # the same keys, less the classifier's
        torch.testing.assert_close(headless(x), pooled)  # (N, num_features)
        assert headless.num_classes == 0

        unpooled = timm.create_model(name, num_classes=0, global_pool="", width=W).eval()
        unpooled.load_state_dict(state)
        assert torch.equal(unpooled(x), feats)  # (N, C, H, W)

        both = timm.create_model(name, num_classes=0, global_pool="catavgmax", width=W).eval()
        both.load_state_dict(state)
        assert both.head_hidden_size == 2 * both.num_features
        torch.testing.assert_close(both(x), torch.cat([pooled, feats.amax((2, 3))], 1))


def test_reset_classifier_keeps_pool_device_and_dtype() -> None:
    model = sd.create_model("sdnet18", num_classes=10, width=W).double().eval()
    model.reset_classifier(5)
    assert model.linear.weight.shape == (5, 8 * W) and model.linear.weight.dtype == torch.float64
    assert model.global_pool.pool_type == "avg" and model.num_classes == 5
    x = _x().double()
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        model.reset_classifier(0, "")
        assert torch.equal(model(x), model.forward_features(x))
    with pytest.raises(UsageError, match="global_pool"):
        sd.create_model("sdnet18", global_pool="median")


@pytest.mark.parametrize("stem_type,size,reductions", [("cifar", 16, [1, 1, 2, 4, 8]), ("imagenet", 64, [4, 4, 8, 16, 32])])
def test_features_only_channels_and_reductions(stem_type: str, size: int, reductions: list[int]) -> None:
    torch.manual_seed(0)
    net = timm.create_model("sdnet18_all", features_only=True, stem_type=stem_type, width=W).eval()
    assert isinstance(net, FeatureListNet)
    assert net.feature_info.channels() == [W, W, 2 * W, 4 * W, 8 * W] and net.feature_info.reduction() == reductions
    x = _x(size)
    with torch.no_grad():
        outs = net(x)
        model = sd.create_model("sdnet18_all", num_classes=0, stem_type=stem_type, width=W).eval()
        model.load_state_dict(net.state_dict())  # the wrapper keeps the model's own keys
        want = _stages(model, x)
    assert [o.shape[1] for o in outs] == net.feature_info.channels()
    assert [size // o.shape[-1] for o in outs] == reductions
    for o, w in zip(outs, want):
        torch.testing.assert_close(o, w)

    picked = timm.create_model("sdnet18_all", features_only=True, out_indices=(1, 3), stem_type=stem_type, width=W).eval()
    picked.load_state_dict(net.state_dict(), strict=False)  # layer4 is not part of a wrapper that stops at layer3
    getter = timm.create_model("sdnet18_all", features_only=True, feature_cls="getter", out_indices=(1, 3), stem_type=stem_type,
                               width=W).eval()
    getter.load_state_dict({f"model.{k}": v for k, v in net.state_dict().items()}, strict=False)
    with torch.no_grad():
        for got in (picked(x), getter(x)):
            assert [g.shape[1] for g in got] == [W, 4 * W]
            torch.testing.assert_close(got[0], want[1])
            torch.testing.assert_close(got[1], want[3])


def test_forward_intermediates_and_prune() -> None:
    torch.manual_seed(0)
    model = sd.create_model("sdnet18", num_classes=10, width=W).eval()
    x = _x()
    with torch.no_grad():
        want = _stages(model, x)
        final, taps = model.forward_intermediates(x)
        assert torch.equal(final, want[-1]) and len(taps) == len(model.feature_info) == 5
        assert all(torch.equal(t, w) for t, w in zip(taps, want))
        assert [t.shape[1] for t in taps] == [f["num_chs"] for f in model.feature_info]
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [t.shape for t in last2] == [want[3].shape, want[4].shape]
        early, picked = model.forward_intermediates(x, indices=[0, -3], stop_early=True)
        assert torch.equal(early, want[2]) and torch.equal(picked[1], want[2]) and torch.equal(picked[0], want[0])
        with pytest.raises(UsageError, match="out of range"):
            model.forward_intermediates(x, indices=[5])

        assert model.prune_intermediate_layers([2]) == [2]
        assert model.num_features == model.head_hidden_size == 2 * W and model.num_classes == 0
        assert torch.equal(model(x), want[2])  # no pooling, no classifier: the stage-2 features
        assert not any(k.startswith(("layer3.", "layer4.", "linear.")) for k in model.state_dict())


def test_drop_rate_drop_path_rate_and_checkpointing() -> None:
    torch.manual_seed(0)
    model = timm.create_model("sdnet18", drop_rate=0.5, drop_path_rate=0.3, width=W)
    rates = [b.drop_path_rate for s in model.stages()[1:] for b in s]
    assert rates == pytest.approx([0.3 * i / 7 for i in range(8)])  # timm's linear rule over the 8 blocks
    feats = torch.rand(64, 8 * W, 2, 2) + 1.0
    kept = model.forward_head(feats, pre_logits=True)
    pooled = feats.mean((2, 3))
    zero = kept == 0
    assert 0.3 < zero.float().mean() < 0.7 and torch.allclose(kept[~zero], 2 * pooled[~zero])
    model.eval()
    assert torch.equal(model.forward_head(feats, pre_logits=True), pooled)
    with pytest.raises(UsageError, match="shortcut"):
        sd.create_model("sdnet18_all", shortcut=False, drop_path_rate=0.1)

    plain = sd.create_model("sdnet18", num_classes=3, width=W).train()
    ckpt = sd.create_model("sdnet18", num_classes=3, width=W).train()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing()
    x = _x(seed=1)
    plain(x).sum().backward()
    ckpt(x).sum().backward()
    for (n, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)
    with pytest.raises(UsageError, match="recompute"):
        sd.create_model("sdnet18_all", width=W).set_grad_checkpointing()


@pytest.mark.parametrize("stem_type", ["cifar", "imagenet"])
def test_pretrained_cfg_and_group_matcher(stem_type: str) -> None:
    model = timm.create_model("sdnet18", stem_type=stem_type, width=W, num_classes=10)
    cfg = model.pretrained_cfg
    side, pool = (32, 4) if stem_type == "cifar" else (224, 7)
    assert tuple(cfg["input_size"]) == (3, side, side) and tuple(cfg["pool_size"]) == (pool, pool)
    mean, std = {"cifar": (datasets.CIFAR_MEAN, datasets.CIFAR_STD),
                 "imagenet": (datasets.IMAGENET_MEAN, datasets.IMAGENET_STD)}[stem_type]
    assert tuple(cfg["mean"]) == tuple(mean) == STEM_MEAN_STD[stem_type][0] and tuple(cfg["std"]) == tuple(std)
    keys = model.state_dict()
    assert f"{cfg['first_conv']}.weight" in keys and f"{cfg['classifier']}.weight" in keys
    assert sd.create_model("sdnet18", stem_type=stem_type).pretrained_cfg["input_size"] == (3, side, side)  # ours too
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, side, side)).shape[-2:] == (pool, pool)
    groups = group_parameters(model, model.group_matcher())
    names = {n for members in groups.values() for n in members}
    assert names == {n for n, _ in model.named_parameters()}
    assert len(groups) == 1 + 8 + 1  # stem, one group per block, the classifier
    assert len(group_parameters(model, model.group_matcher(coarse=True))) == 1 + 4 + 1


def test_converted_timm_model_keeps_its_api() -> None:
    torch.manual_seed(0)
    model = sd.convert(timm.create_model("resnet18", num_classes=5), "all").eval()
    assert type(model).__module__.startswith("timm.") and len(csc_layers(model)) > 0
    x = _x(32)
    with torch.no_grad():
        feats = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats.mean((2, 3)))
        final, taps = model.forward_intermediates(x)
        torch.testing.assert_close(final, feats)
        assert [t.shape[1] for t in taps] == [f["num_chs"] for f in model.feature_info]
        net = FeatureListNet(model, out_indices=(1, 2, 3, 4))
        assert [o.shape[1] for o in net(x)] == net.feature_info.channels() == [64, 128, 256, 512]
        model = sd.create_model("timm:resnet18+stem", num_classes=0).eval()
        assert model(x).shape == (2, model.num_features)
        model.reset_classifier(0, "")
        assert model(x).shape == (2, 512, 1, 1)


@pytest.mark.parametrize("name", ["resnet18", "sdnet18", "sdnet18_all"])
def test_unknown_keyword_is_a_type_error_and_a_usage_error(name: str) -> None:
    """timm's model contract (``_assert_model_api_contract``) expects ``TypeError`` for an argument the model does
    not take, as Python raises for an unexpected keyword; the CLI still reads it as the user's mistake (exit 2)."""
    with pytest.raises(TypeError, match="not_a_model_arg: not an argument of"):
        sd.create_model(name, not_a_model_arg=1)
    with pytest.raises(UsageError, match="not_a_model_arg"):
        sd.create_model(name, not_a_model_arg=1)

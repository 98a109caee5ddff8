"""Official checkpoint import: all four reference layouts, same logits as the official forward, clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sdnet_cli.hub.official import import_official, official_to_ours

# keys and shapes of the official checkpoints (copy of shared/reference/official_sdnet_state_dicts.json)
LAYOUTS = json.loads((Path(__file__).parent / "data" / "official_sdnet_state_dicts.json").read_text())


def fake_official_state(layout: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with exactly the official keys and shapes, plausible BN statistics and step sizes."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout["state_dict"].items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("step_size"):
            state[key] = torch.tensor(0.05 + 0.1 * torch.rand((), generator=g).item())
        elif key.endswith(("bn1.weight", "bn2.weight", "1.weight")) and len(shape) == 1:
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return state


# --- an independent re-statement of the official forward (Lib/models/sdnet.py, sdnet_inverse.py, csc_layer.py) ---

def off_csc(x, sd, p, stride, padding, lmbd=0.1):
    w = sd[p + ".dn.weight"]
    w = w / w.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)  # w_norm in forward
    s = sd[p + ".dn.step_size"].item()
    c = F.relu(F.softshrink(s * F.conv2d(x, w, stride=stride, padding=padding), lmbd * s))
    xp = F.conv_transpose2d(c, w, stride=stride, padding=padding, output_padding=stride - 1)
    c = c + s * F.conv2d(x - xp, w, stride=stride, padding=padding)
    return F.relu(F.softshrink(c, lmbd * s))


def off_bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False)


def off_forward(sd: dict, x: torch.Tensor, layout: dict) -> torch.Tensor:
    imagenet = layout["dataset_stem"] == "imagenet"
    all_ = layout["arch"].endswith("_all")
    out = off_csc(x, sd, "layer0.0", 2 if imagenet else 1, 3 if imagenet else 1)
    out = off_bn(out, sd, "layer0.1")
    if imagenet:
        out = off_csc(out, sd, "layer0.2", 2, 1) if all_ else F.max_pool2d(out, 3, 2, 1)
    for stage in range(1, 5):
        for b in range(2):
            p = f"layer{stage}.layers.{b}" if all_ else f"layer{stage}.{b}"
            stride = 2 if stage > 1 and b == 0 else 1
            if all_:
                h = off_bn(off_csc(out, sd, p + ".conv1", stride, 1), sd, p + ".bn1")
                h = off_bn(off_csc(h, sd, p + ".conv2", 1, 1), sd, p + ".bn2")
            else:
                h = F.relu(off_bn(F.conv2d(out, sd[p + ".conv1.weight"], stride=stride, padding=1), sd, p + ".bn1"))
                h = off_bn(F.conv2d(h, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2")
            if layout["shortcut"]:
                sc = out
                if p + ".shortcut.0.weight" in sd:
                    sc = off_bn(F.conv2d(out, sd[p + ".shortcut.0.weight"], stride=stride), sd, p + ".shortcut.1")
                h = F.relu(h + sc)
            out = h
    return F.linear(out.mean((2, 3)), sd["linear.weight"], sd["linear.bias"])


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_official_layouts_import_with_same_logits(name: str, tmp_path) -> None:
    layout = LAYOUTS[name]
    state = fake_official_state(layout)
    path = tmp_path / "model_best.pth.tar"
    torch.save(state, path)
    model, config = import_official(path, layout["arch"], layout["num_classes"], layout["dataset_stem"],
                                    shortcut=layout["shortcut"])
    assert config.architecture == layout["arch"]
    assert not model.training
    ours = model.state_dict()
    assert set(ours) == {official_to_ours(k) for k in layout["state_dict"]}
    # stored step sizes are kept exactly
    for k, v in state.items():
        if k.endswith("step_size"):
            assert ours[official_to_ours(k)].item() == v.item()
    size = 64 if layout["dataset_stem"] == "imagenet" else 16
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = model(x)
        want = off_forward(state, x, layout)
    assert got.shape == (2, layout["num_classes"])
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()


def test_wrapped_and_prefixed_checkpoint(tmp_path) -> None:
    layout = LAYOUTS["sdnet18-cifar10-sc-10"]
    state = fake_official_state(layout)
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "c.pth.tar")
    model, _ = import_official(tmp_path / "c.pth.tar", "sdnet18", 10, "cifar")
    assert torch.equal(model.linear.weight, state["linear.weight"])


def test_wrong_architecture_names_keys(tmp_path) -> None:
    torch.save(fake_official_state(LAYOUTS["sdnet18-cifar10-sc-10"]), tmp_path / "c.pth.tar")
    with pytest.raises(ValueError, match=r"missing keys \(16\): layer1\.0\.conv1\.step_size"):
        import_official(tmp_path / "c.pth.tar", "sdnet18_all", 10, "cifar")
    with pytest.raises(ValueError, match=r"wrong shapes .*linear\.weight"):
        import_official(tmp_path / "c.pth.tar", "sdnet18", 100, "cifar")


class Evil:
    def __reduce__(self):  # pickled code: weights_only must refuse it
        return (print, ("pwned",))


def test_bad_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        import_official(tmp_path / "missing.pth.tar", "sdnet18", 10)
    full = tmp_path / "full.pth.tar"
    torch.save({"linear.weight": torch.zeros(10, 512)}, full)
    trunc = tmp_path / "trunc.pth.tar"
    trunc.write_bytes(full.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        import_official(trunc, "sdnet18", 10)
    text = tmp_path / "notes.pth.tar"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        import_official(text, "sdnet18", 10)
    evil = tmp_path / "evil.pth.tar"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(ValueError, match="refused by torch.load"):
        import_official(evil, "sdnet18", 10)
    lst = tmp_path / "list.pth.tar"
    torch.save([torch.zeros(1)], lst)
    with pytest.raises(ValueError, match="holds no state dict"):
        import_official(lst, "sdnet18", 10)

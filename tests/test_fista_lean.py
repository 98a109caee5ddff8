"""``csc_fista_lean``: the two-step CSC FISTA with recomputation — values and gradients of ``csc_fista``, less saved."""

from __future__ import annotations

import pytest
import torch

from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from sdnet_cli.layers import functional as SF
from sdnet_cli.layers.fista_autograd import csc_fista_lean, keeps_residual, lean_applies


def saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd saves for backward while running ``fn``."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


class PeakLiveBytes(TorchDispatchMode):
    """Peak bytes of the storages that ops create while the mode is on and that are still referenced."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.now = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.now -= self.live.pop(key)[1]
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.live:
                st = t.untyped_storage()
                self.live[st.data_ptr()] = (StorageWeakRef(st), st.nbytes())
                self.now += st.nbytes()
        self.peak = max(self.peak, self.now)
        return out


# (C_in, C_out, kernel, stride, padding, image size): a plain layer, a downsampling one, an RGB 7x7 stem
SHAPES = [(4, 6, 3, 1, 1, 10), (4, 6, 3, 2, 1, 10), (3, 16, 7, 2, 3, 16)]


@pytest.mark.parametrize("shape", SHAPES, ids=["plain", "strided", "stem"])
@pytest.mark.parametrize("input_grad", [True, False], ids=["x-grad", "no-x-grad"])
def test_values_and_gradients_equal_csc_fista(shape: tuple, input_grad: bool) -> None:
    c_in, c_out, k, stride, pad, size = shape
    g = torch.Generator().manual_seed(stride + k)
    x0 = torch.randn(3, c_in, size, size, generator=g, dtype=torch.float64)
    w0 = SF.normalize_atoms(torch.randn(c_out, c_in, k, k, generator=g, dtype=torch.float64))
    s = torch.tensor(0.08, dtype=torch.float64)
    cot = torch.randn(3, c_out, size // stride, size // stride, generator=g, dtype=torch.float64)
    outs, grads = [], []
    for fn in (lambda x, w: SF.csc_fista(x, w, s, 0.1, 0.0, 2, True, stride, pad),
               lambda x, w: csc_fista_lean(x, w, s, 0.1, stride, pad)):
        x, w = x0.clone().requires_grad_(input_grad), w0.clone().requires_grad_()
        z = fn(x, w)
        (z * cot).sum().backward()
        outs.append(z.detach())
        grads.append((x.grad, w.grad))
    assert (outs[0] > 0).any() and (outs[0] == 0).any()
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    if input_grad:
        torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-10, atol=1e-12)
    else:
        assert grads[1][0] is None and grads[0][0] is None
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-10, atol=1e-12)


def test_keeps_the_residual_of_a_stem_only() -> None:
    """A 7x7 stride-2 RGB stem: the residual (3 channels at 2x the code's side) is 3/16 of the code, so it is
    kept (its recomputation is the slow transposed convolution); a plain layer's is as large as the code."""
    w = SF.normalize_atoms(torch.randn(64, 3, 7, 7)).requires_grad_()
    x = torch.randn(2, 3, 32, 32)
    code = torch.empty(2, 64, 16, 16)
    assert keeps_residual(x, code) and not keeps_residual(torch.empty(2, 64, 16, 16), code)
    s = torch.tensor(0.05)
    lean = saved_bytes(lambda: csc_fista_lean(x, w, s, 0.1, 2, 3))
    assert lean == 2 * x.numel() * 4 + code.numel() * 4 + 4 * w.numel() + 4  # x, r, z₂, the weight, the step


@pytest.mark.parametrize("stride", [1, 2])
def test_backward_holds_few_code_sized_tensors(stride: int) -> None:
    """Peak memory of the lean backward beyond what it saved and the incoming gradient, with ``U`` the code's
    size and ``I`` the image's: at most ``z₁``, ``g₂``, ``g₁``, a bool mask (U/4), ``r``, ``g_r`` and one more
    image-sized temporary, 3.25 U + 3 I (measured 5.3 U at stride 1 and 8.1 U at stride 2, where I = 2 U).
    Recomputing everything first and freeing nothing early held 8 U and 12 U."""
    x = torch.randn(4, 16, 16, 16, requires_grad=True)
    w = SF.normalize_atoms(torch.randn(16 * stride, 16, 3, 3)).requires_grad_()
    z = csc_fista_lean(x, w, torch.tensor(0.05), 0.1, stride, 1)
    unit = z.numel() * 4
    image = x.numel() * 4
    g = torch.randn_like(z)
    with PeakLiveBytes() as mode:
        z.backward(g)
    assert mode.peak <= 3.25 * unit + 3 * image + 8 * w.numel()


def test_saves_only_input_and_output() -> None:
    x = torch.randn(4, 16, 16, 16, requires_grad=True)
    w = SF.normalize_atoms(torch.randn(16, 16, 3, 3)).requires_grad_()
    s = torch.tensor(0.05)
    act = x.numel() * 4  # image and code have the same size here
    full = saved_bytes(lambda: SF.csc_fista(x, w, s, 0.1, 0.0, 2, True, 1, 1))
    lean = saved_bytes(lambda: csc_fista_lean(x, w, s, 0.1, 1, 1))
    assert full >= 4 * act  # x, z₁, the residual, z₂
    assert lean <= 2 * act + 4 * w.numel() + 64  # x, z₂, the weight, the step size


def test_applies_to_the_paper_layer_only() -> None:
    assert lean_applies(0.1, 0.0, 2, True)
    assert not lean_applies(0.1, 0.0, 3, True) and not lean_applies(0.1, 0.2, 2, True)
    assert not lean_applies(torch.ones(2, 1, 1, 1), 0.0, 2, True) and not lean_applies(0.1, 0.0, 2, False)


def test_model_with_recompute_trains_identically() -> None:
    """``layer.recompute = True`` on every CSC layer of sdnet18_all: same loss and gradients (what it saves:
    test_saves_only_input_and_output; at 8x8 the saved weights outweigh the activations). In float64: in float32,
    rounding flips a few codes at the shrinkage threshold through 17 layers, which moves isolated gradients."""
    import torch.nn.functional as F

    from sdnet_cli import create_model, csc_layers

    x, y = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)).double(), torch.tensor([1, 7])
    runs = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = create_model("sdnet18_all", num_classes=10).double().train()
        model(x)  # step sizes set
        for layer in csc_layers(model):
            layer.recompute = recompute
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        runs.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    assert runs[1][0] == pytest.approx(runs[0][0], rel=1e-10)
    for a, b in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9)


def test_train_recompute_setting_reaches_every_csc_layer(tmp_path, monkeypatch) -> None:
    """``train.recompute=true``: every CSC layer of the run's model takes the lean step in training (counted at
    its call), and the run's losses are those of the default run (equal at step 1, where only the saved tensors
    differ; within float32 rounding after the first update)."""
    import json

    import sdnet_cli.layers.csc as csc
    from sdnet_cli.config import resolve_config
    from sdnet_cli.engine.train import train

    calls = []
    real = csc.csc_fista_lean
    monkeypatch.setattr(csc, "csc_fista_lean", lambda *a, **k: calls.append(1) or real(*a, **k))
    losses = []
    for recompute in ("false", "true"):
        calls.clear()
        out = tmp_path / f"run-{recompute}"
        cfg = resolve_config(None, {"train.output": str(out)},
                             ["model.name=sdnet18_all", "model.width=8", "train.epochs=1", "train.batch_size=16",
                              "train.limit_batches=3", "train.tensorboard=false", "train.device=cpu",
                              f"train.recompute={recompute}"])
        train(cfg)
        rows = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
        losses.append([r["loss"] for r in rows])
        assert len(calls) == (0 if recompute == "false" else 3 * 17)  # 3 steps x 17 CSC layers
    assert losses[1][0] == losses[0][0]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)

"""``csc_fista_lean``: the two-step CSC FISTA with recomputation — values and gradients of ``csc_fista``, less saved."""

from __future__ import annotations

import pytest
import torch

from sdnet_cli.layers import functional as SF
from sdnet_cli.layers.fista_autograd import csc_fista_lean, lean_applies


def saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd saves for backward while running ``fn``."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@pytest.mark.parametrize("stride", [1, 2])
def test_values_and_gradients_equal_csc_fista(stride: int) -> None:
    g = torch.Generator().manual_seed(stride)
    x0 = torch.randn(3, 4, 10, 10, generator=g, dtype=torch.float64)
    w0 = SF.normalize_atoms(torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64))
    s = torch.tensor(0.08, dtype=torch.float64)
    cot = torch.randn(3, 6, 10 // stride, 10 // stride, generator=g, dtype=torch.float64)
    outs, grads = [], []
    for fn in (lambda x, w: SF.csc_fista(x, w, s, 0.1, 0.0, 2, True, stride, 1),
               lambda x, w: csc_fista_lean(x, w, s, 0.1, stride, 1)):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        z = fn(x, w)
        (z * cot).sum().backward()
        outs.append(z.detach())
        grads.append((x.grad, w.grad))
    assert (outs[0] > 0).any() and (outs[0] == 0).any()
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-10, atol=1e-12)


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

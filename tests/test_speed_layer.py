"""The fast CSC layer: same iterates as the textbook FISTA, only the work the math needs, compile/bf16/channels_last safe."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from sdnet_cli.layers import CSCConv2d
from sdnet_cli.layers import functional as SF

aten = torch.ops.aten


def reference_fista(x, weight, s, lmbd, mu, n_steps, non_negative, stride, padding):
    """Textbook FISTA (``SF.fista`` with ``gradient_step(y) = Dᵀ(x − Dy)``), independent of ``csc_fista``'s folding."""

    def gradient_step(y):
        return SF.dict_transpose(x - SF.dict_apply(y, weight, stride, padding), weight, stride, padding)

    b = SF.dict_transpose(x, weight, stride, padding)
    return SF.fista(b, gradient_step, s, lmbd, mu, n_steps, non_negative)


PER_SAMPLE = torch.tensor([0.1, 0.5, 1.0, 0.0], dtype=torch.float64).view(4, 1, 1, 1)


@pytest.mark.parametrize(
    "lmbd,mu,n_steps,non_negative,stride",
    [(lm, mu, n, nn_, 1 + (n + nn_) % 2) for lm, mu, nn_ in itertools.product([0.1, "per-sample"], [0.0, 0.3], [True, False])
     for n in (1, 2, 4)],
)
def test_csc_fista_equals_textbook_values_and_gradients(lmbd, mu, n_steps, non_negative, stride) -> None:
    g = torch.Generator().manual_seed(n_steps + 7 * stride)
    x0 = torch.randn(4, 3, 10, 10, generator=g, dtype=torch.float64)
    w0 = SF.normalize_atoms(torch.randn(6, 3, 3, 3, generator=g, dtype=torch.float64))
    lm = PER_SAMPLE if lmbd == "per-sample" else lmbd
    s = torch.tensor(0.07, dtype=torch.float64)
    outs, grads = [], []
    for fn in (SF.csc_fista, reference_fista):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        z = fn(x, w, s, lm, mu, n_steps, non_negative, stride, 1)
        (z * torch.linspace(-1, 1, z.numel(), dtype=z.dtype).view_as(z)).sum().backward()
        outs.append(z)
        grads.append((x.grad, w.grad))
    assert (outs[1] != 0).any() and (outs[1] == 0).any()  # the prox is active both ways
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-10, atol=1e-12)


class OpRecorder(TorchDispatchMode):
    """Records every aten op with the number of elements of its (first) output."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[object, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        self.ops.append((func.overloadpacket, first.numel() if isinstance(first, torch.Tensor) else 0))
        return out

    def count(self, *packets) -> int:
        return sum(p in packets for p, _ in self.ops)


CONVS = (aten.convolution, aten.mkldnn_convolution, aten.conv2d, aten.conv_transpose2d)


@pytest.mark.parametrize("n_steps", [1, 2, 3, 4])
def test_forward_does_only_the_math(n_steps: int) -> None:
    """Eval forward: 2·n_steps − 1 convolutions, no repeat, and per step at most one add and one relu in code space."""
    layer = CSCConv2d(8, 16, 3, padding=1, n_steps=n_steps).eval()
    x = torch.randn(2, 8, 12, 12)
    layer(x)  # step size set up
    with torch.no_grad(), OpRecorder() as rec:
        z = layer(x)
    assert rec.count(aten.convolution) == 2 * n_steps - 1
    assert rec.count(aten.repeat, aten.repeat_interleave) == 0
    code_sized = [p for p, n in rec.ops if n == z.numel() and p is not aten.convolution]
    # relu per step, one add per step after the first, one lerp (momentum) per step after the second
    assert len(code_sized) <= n_steps + (n_steps - 1) + max(n_steps - 2, 0), code_sized


@pytest.mark.parametrize("c_in,k,stride,padding", [(1, 3, 1, 1), (3, 3, 1, 1), (3, 3, 2, 1), (3, 1, 2, 0), (1, 5, 2, 2), (2, 3, 1, 0)])
def test_gemm_dict_apply_equals_conv_transpose(c_in: int, k: int, stride: int, padding: int) -> None:
    g = torch.Generator().manual_seed(k + 10 * stride)
    w = torch.randn(7, c_in, k, k, generator=g, dtype=torch.float64)
    z = torch.randn(2, 7, 5, 6, generator=g, dtype=torch.float64)
    expected = F.conv_transpose2d(z, w, None, stride, padding, stride - 1)
    got = SF.dict_apply_gemm(z, w, stride, padding)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_steps", [2, 3])
def test_rgb_stem_eval_takes_the_gemm_and_autograd_the_deconvolution(n_steps: int) -> None:
    """A 3-channel 3×3 layer: without autograd each D z is one bmm (n_steps convolutions left); with it, 2·n_steps − 1."""
    layer = CSCConv2d(3, 16, 3, padding=1, n_steps=n_steps).eval()
    x = torch.randn(2, 3, 12, 12)
    layer(x)
    with torch.no_grad(), OpRecorder() as rec:
        z = layer(x)
    assert rec.count(aten.convolution) == n_steps and rec.count(aten.bmm) == n_steps - 1
    xg = x.clone().requires_grad_()
    with OpRecorder() as rec:
        z_grad = layer(xg)
    assert rec.count(aten.convolution) == 2 * n_steps - 1 and rec.count(aten.bmm) == 0
    torch.testing.assert_close(z, z_grad.detach(), rtol=1e-5, atol=1e-6)


def test_training_forward_extra_work_is_one_power_iteration() -> None:
    """Train forward = FISTA's convolutions + 2 per power iteration on a single-sample vector; no reconstruction loss."""
    layer = CSCConv2d(8, 16, 3, padding=1, n_steps=2, power_iters=1).train()
    x = torch.randn(4, 8, 12, 12)
    layer(x)
    with OpRecorder() as rec:
        layer(x)
    conv_sizes = sorted(n for p, n in rec.ops if p is aten.convolution)
    assert len(conv_sizes) == 3 + 2
    assert conv_sizes[:2] == [8 * 12 * 12, 16 * 12 * 12]  # the power iteration's D v, Dᵀ(D v) on one (1, C, H, W) vector


def saved_bytes(fn) -> tuple[int, set[int]]:
    """Bytes of the distinct storages autograd saves for backward while running ``fn``."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()), set(seen)


def test_backward_keeps_only_what_the_convolutions_need() -> None:
    """Two steps save x, z₁, the residual x − Dz₁ (image sized), z₂ and the weights: no extra code-sized tensor."""
    layer = CSCConv2d(8, 32, 3, padding=1, n_steps=2).train()
    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    layer(x)
    total, _ = saved_bytes(lambda: layer(x))
    code, image = 4 * 32 * 16 * 16 * 4, x.numel() * 4
    weights = 3 * layer.weight.numel() * 4 + 1024  # W, s·W and −s·W
    assert total <= 2 * code + 2 * image + weights, (total, code, image)


def test_no_graph_break_under_compile() -> None:
    """After the one-time step-size set-up, the layer compiles to a single graph (train and eval), same results."""
    torch._dynamo.reset()
    layer = CSCConv2d(3, 8, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 12, 12)
    for training in (True, False):
        layer.train(training)
        layer(x)
        explanation = torch._dynamo.explain(layer)(x)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1


def test_compiled_fullgraph_matches_eager() -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = CSCConv2d(3, 8, 3, padding=1).train()
    x = torch.randn(2, 3, 10, 10)
    layer(x)
    twin = CSCConv2d(3, 8, 3, padding=1).train()
    twin.load_state_dict(layer.state_dict())
    twin(x)
    compiled = torch.compile(twin, backend="aot_eager", fullgraph=True)
    for _ in range(2):
        z_eager, z_comp = layer(x), compiled(x)
        torch.testing.assert_close(z_comp, z_eager)
        z_eager.square().sum().backward()
        z_comp.square().sum().backward()
        torch.testing.assert_close(twin.weight.grad, layer.weight.grad)
        torch.testing.assert_close(twin.step_size, layer.step_size)


def test_fresh_layer_compiles() -> None:
    """Even the first (set-up) call runs under torch.compile and gives the eager result."""
    torch._dynamo.reset()
    torch.manual_seed(1)
    a = CSCConv2d(3, 8, 3, padding=1)
    b = CSCConv2d(3, 8, 3, padding=1)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(torch.compile(b, backend="eager")(x), a(x))


def test_bf16_autocast_forward_backward() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(8, 16, 3, padding=1).train()
    x = torch.randn(4, 8, 16, 16)
    z32 = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z16 = layer(x)
    assert z16.dtype == torch.bfloat16 and layer.step_size.dtype == torch.float32
    z16.float().square().sum().backward()
    assert torch.isfinite(layer.weight.grad).all() and layer.weight.grad.abs().sum() > 0
    err = (z16.float() - z32.detach()).norm() / z32.detach().norm()
    assert err < 0.03, err


def test_channels_last_gives_same_code() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(8, 16, 3, stride=2, padding=1).eval()
    x = torch.randn(4, 8, 16, 16)
    z = layer(x)
    layer_cl = layer.to(memory_format=torch.channels_last)
    z_cl = layer_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(z_cl, z, rtol=1e-5, atol=1e-5)


def test_per_sample_lambda_in_bf16_keeps_dtype() -> None:
    layer = CSCConv2d(3, 8, 3, padding=1).eval()
    x = torch.randn(3, 3, 8, 8)
    layer(x)
    layer.lmbd = torch.tensor([0.1, 0.5, 1.0]).view(3, 1, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = layer(x)
    assert z.dtype == torch.bfloat16
    sparsity = (z == 0).flatten(1).float().mean(1)
    assert sparsity[0] < sparsity[1] < sparsity[2]

"""CSC layer math: FISTA against an independent lasso solver, adjointness, power iteration, gradcheck, module behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import Lasso

from sdnet_cli.layers import CSCConv2d, SparseCodingLinear, set_lmbd
from sdnet_cli.layers import functional as SF
from sdnet_cli.layers import spectral as SP


def explicit_matrix(weight: torch.Tensor, stride: int, padding: int, x_shape: tuple[int, ...]) -> torch.Tensor:
    """The matrix of ``z ↦ Dz`` built column by column from basis codes (independent of FISTA)."""
    c_out, k = weight.shape[0], weight.shape[-1]
    h = (x_shape[-1] + 2 * padding - k) // stride + 1
    n_code = c_out * h * h
    basis = torch.eye(n_code, dtype=weight.dtype).reshape(n_code, c_out, h, h)
    cols = SF.dict_apply(basis, weight, stride, padding)
    assert cols.shape[1:] == x_shape
    return cols.reshape(n_code, -1).T  # (n_x, n_code)


def lasso_objective_np(x: np.ndarray, D: np.ndarray, z: np.ndarray, lmbd: float) -> float:
    return float(lmbd * np.abs(z).sum() + 0.5 * np.sum((x - D @ z) ** 2))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("non_negative", [True, False])
def test_fista_reaches_lasso_optimum(stride: int, non_negative: bool) -> None:
    g = torch.Generator().manual_seed(stride + 10 * non_negative)
    weight = SF.normalize_atoms(torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64))
    x = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64)
    lmbd = 0.05
    D = explicit_matrix(weight, stride, 1, (2, 6, 6))
    L = torch.linalg.matrix_norm(D, ord=2).item() ** 2
    z = SF.csc_fista(x, weight, 0.9 / L, lmbd, n_steps=800, non_negative=non_negative, stride=stride, padding=1)
    ours = lasso_objective_np(x.flatten().numpy(), D.numpy(), z.flatten().numpy(), lmbd)

    n = D.shape[0]  # sklearn: (1/2n)‖y − Xw‖² + α‖w‖₁  ⇒  α = λ/n
    ref = Lasso(alpha=lmbd / n, fit_intercept=False, positive=non_negative, tol=1e-12, max_iter=200_000)
    ref.fit(D.numpy(), x.flatten().numpy())
    theirs = lasso_objective_np(x.flatten().numpy(), D.numpy(), ref.coef_, lmbd)
    assert abs(ours - theirs) / abs(theirs) < 1e-4
    if non_negative:
        assert (z >= 0).all()
    else:
        assert (z < 0).any()


def test_linear_fista_reaches_lasso_optimum() -> None:
    g = torch.Generator().manual_seed(3)
    weight = SF.normalize_atoms(torch.randn(24, 10, generator=g, dtype=torch.float64))  # (K, D): D = weightᵀ
    x = torch.randn(1, 10, generator=g, dtype=torch.float64)
    L = torch.linalg.matrix_norm(weight, ord=2).item() ** 2
    z = SF.linear_fista(x, weight, 0.9 / L, 0.1, n_steps=1500, non_negative=True)
    D = weight.T.numpy()
    ours = lasso_objective_np(x[0].numpy(), D, z[0].numpy(), 0.1)
    ref = Lasso(alpha=0.1 / 10, fit_intercept=False, positive=True, tol=1e-12, max_iter=200_000).fit(D, x[0].numpy())
    theirs = lasso_objective_np(x[0].numpy(), D, ref.coef_, 0.1)
    assert abs(ours - theirs) / abs(theirs) < 1e-4


@pytest.mark.parametrize("stride,padding,k", [(1, 1, 3), (2, 1, 3), (2, 3, 7), (1, 0, 1)])
def test_conv_transpose_is_adjoint_of_conv(stride: int, padding: int, k: int) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, k, k, generator=g, dtype=torch.float64)
    x = torch.randn(2, 3, 12, 12, generator=g, dtype=torch.float64)
    dtx = SF.dict_transpose(x, w, stride, padding)
    z = torch.randn(dtx.shape, generator=g, dtype=torch.float64)
    dz = SF.dict_apply(z, w, stride, padding)
    assert dz.shape == x.shape
    assert torch.allclose((dtx * z).sum(), (x * dz).sum(), rtol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("how", ["first forward", "converge_step_size"])
def test_step_size_matches_spectral_norm(stride: int, how: str) -> None:
    torch.manual_seed(1)
    layer = CSCConv2d(3, 8, 3, stride=stride, padding=1).double()
    if how == "first forward":
        layer(torch.randn(2, 3, 12, 12, dtype=torch.float64))
    else:
        layer.converge_step_size((3, 12, 12))
    D = explicit_matrix(layer.weight.detach(), stride, 1, (3, 12, 12))
    L = torch.linalg.matrix_norm(D, ord=2).item() ** 2
    assert abs(0.9 / layer.step_size.item() - L) / L < 1e-6


def test_lanczos_matches_dense_eigenvalue_and_beats_power_iteration() -> None:
    g = torch.Generator().manual_seed(3)
    w = SF.normalize_atoms(torch.randn(16, 3, 3, 3, generator=g, dtype=torch.float64))
    D = explicit_matrix(w, 1, 1, (3, 12, 12))
    L = torch.linalg.eigvalsh(D.T @ D)[-1].item()
    gram = SP.csc_gram(w, 1, 1)
    v = torch.randn(1, 16, 12, 12, generator=g, dtype=torch.float64)
    eig, u = SP.lanczos(gram, v, 300, tol=1e-9)
    assert abs(eig.item() - L) / L < 1e-12
    assert u.shape == v.shape and abs(u.norm().item() - 1) < 1e-12
    assert (gram(u) - eig * u).norm().item() < 1e-7 * L  # the Ritz vector is the top eigenvector
    e20, _ = SP.lanczos(gram, v, 20)
    p20, _ = SP.power_iteration(gram, v, 20)
    assert 0 <= L - e20.item() < (L - p20.item()) / 10  # same 20 products with DᵀD, far closer


def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(2)
    w = SF.normalize_atoms(torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)).requires_grad_()
    x = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64).requires_grad_()

    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return SF.csc_fista(x, w, 0.2, 0.01, n_steps=3, non_negative=True, stride=1, padding=1)

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-5)


def official_two_step_reference(x: torch.Tensor, w: torch.Tensor, s: float, lmbd: float, stride: int, padding: int) -> torch.Tensor:
    """The official DictBlock.fista_forward for n_steps=2, written out with softshrink then relu."""
    op = stride - 1
    c = F.relu(F.softshrink(s * F.conv2d(x, w, stride=stride, padding=padding), lmbd * s))
    r = x - F.conv_transpose2d(c, w, stride=stride, padding=padding, output_padding=op)
    c = c + s * F.conv2d(r, w, stride=stride, padding=padding)
    return F.relu(F.softshrink(c, lmbd * s))


@pytest.mark.parametrize("stride", [1, 2])
def test_two_steps_equal_official_loop(stride: int) -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 16, 3, stride=stride, padding=1, lmbd=0.1).eval()
    x = torch.randn(4, 3, 16, 16)
    z = layer(x)
    ref = official_two_step_reference(x, layer.weight.detach(), layer.step_size.item(), 0.1, stride, 1)
    assert z.shape == (4, 16, 16 // stride, 16 // stride)
    assert torch.allclose(z, ref, atol=1e-6)


def test_fista_momentum_steps_match_textbook() -> None:
    """Steps k>2 follow y = z + ((t_prev−1)/t)(z − z_prev), z = prox(y + sDᵀ(x − Dy)) on an explicit matrix."""
    g = torch.Generator().manual_seed(4)
    w = SF.normalize_atoms(torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64))
    x = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64)
    D = explicit_matrix(w, 1, 1, (2, 5, 5))
    s, lm, xv = 0.1, 0.05, x.flatten()
    prox = lambda v: torch.clamp(v - lm * s, min=0)  # noqa: E731
    z_prev = z = prox(s * D.T @ xv)
    z = prox(z + s * D.T @ (xv - D @ z))
    t = (1 + math.sqrt(5)) / 2
    for _ in range(3):
        t_prev, t = t, (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = z + (t_prev - 1) / t * (z - z_prev)
        z_prev, z = z, prox(y + s * D.T @ (xv - D @ y))
    ours = SF.csc_fista(x, w, s, lm, n_steps=5, stride=1, padding=1)
    assert torch.allclose(ours.flatten(), z, atol=1e-12)


def test_elastic_net_prox_matches_closed_form() -> None:
    v = torch.linspace(-2, 2, 41, dtype=torch.float64)
    lm, mu, s = 0.3, 0.5, 0.8
    got = SF.elastic_net_prox(v, lm * s, 1 / (1 + mu * s), non_negative=False)
    # argmin_z λs|z| + μs/2 z² + ½(z − v)²  =  sign(v)·max(|v| − λs, 0)/(1 + μs)
    want = torch.sign(v) * torch.clamp(v.abs() - lm * s, min=0) / (1 + mu * s)
    assert torch.allclose(got, want)
    assert torch.allclose(SF.elastic_net_prox(v, lm * s, 1 / (1 + mu * s), True), want.clamp_min(0))


def test_step_size_lifecycle_and_atoms() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 8, 3, padding=1)
    assert torch.allclose(layer.weight.flatten(1).norm(dim=1), torch.ones(8))
    s_init = layer.step_size.item()
    assert s_init > 0  # init: 0.9 / L of the dictionary's size-free operator, made at construction
    x = torch.randn(2, 3, 10, 10)
    layer.eval()(x)  # eval codes with the stored step size: nothing is solved in forward
    assert layer.step_size.item() == s_init
    layer.train()(x)  # the first training forward sets it at x's size (converged)
    s0 = layer.step_size.item()
    D = explicit_matrix(layer.weight.detach(), 1, 1, (3, 10, 10))
    assert abs(0.9 / s0 - torch.linalg.matrix_norm(D, ord=2).item() ** 2) / (0.9 / s0) < 1e-3
    assert s0 > 0.97 * s_init  # L of a finite D is close to the periodic one (below its sup over frequencies)
    with torch.no_grad():
        layer.weight.mul_(1.5)  # an optimizer step that breaks unit norm
    layer(x)  # training forward: atoms renormalised, step refreshed (warm start)
    assert torch.allclose(layer.weight.flatten(1).norm(dim=1), torch.ones(8), atol=1e-6)
    assert abs(layer.step_size.item() - s0) / s0 < 1e-2
    # eval uses the stored value, e.g. a loaded checkpoint's
    state = layer.state_dict()
    state["step_size"] = torch.tensor(0.0123)
    fresh = CSCConv2d(3, 8, 3, padding=1)
    fresh.load_state_dict(state)
    fresh.eval()(x)
    assert fresh.step_size.item() == pytest.approx(0.0123)


def periodic_symbol_top(weight: torch.Tensor, stride: int, dilation: int, groups: int, n: int) -> float:
    """max over the n×n grid of frequencies ω of ‖P(ω)‖², P = the dictionary's polyphase symbol (independent of
    the layer: a dense SVD per frequency and group)."""
    co, ci, kh, kw = weight.shape
    taps = [dilation * i for i in range(kh)]
    sym = weight.new_zeros(co, ci, stride, stride, n, n)
    for i, a in enumerate(taps):
        for j, b in enumerate(taps):
            sym[:, :, a % stride, b % stride, (a // stride) % n, (b // stride) % n] += weight[:, :, i, j]
    p = torch.fft.fft2(sym).permute(4, 5, 0, 1, 2, 3).reshape(n * n * groups, co // groups, ci * stride**2)
    return torch.linalg.matrix_norm(p, ord=2).max().item() ** 2


@pytest.mark.parametrize("cin,cout,k,stride,dilation,groups", [(3, 16, 3, 1, 1, 1), (4, 8, 7, 2, 1, 1),
                                                             (8, 8, 3, 1, 2, 2), (4, 8, 4, 2, 1, 1)])
def test_init_step_size_is_the_periodic_spectrum(cin: int, cout: int, k: int, stride: int, dilation: int,
                                                 groups: int) -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation, groups=groups)
    w = layer.weight.detach().double()
    top = periodic_symbol_top(w, stride, dilation, groups, 8)
    assert abs(0.9 / layer.step_size.item() - top) / top < 1e-3  # Lanczos on the 8×8 torus = the symbol's max
    for hw in (16, 32):  # zero-padded D at real sizes: L close to the periodic one (below its sup over ω)
        layer.converge_step_size((cin, hw, hw))  # Lanczos to 1e-6 (checked against dense D above)
        assert 0.8 * top < 0.9 / layer.step_size.item() < 1.03 * top


def test_per_sample_lambda_equals_separate_runs() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 8, 3, padding=1, lmbd=0.1).eval()
    x = torch.randn(3, 3, 8, 8)
    layer(x)
    lambdas = torch.tensor([0.1, 0.5, 1.0]).view(3, 1, 1, 1)
    layer.lmbd = lambdas
    z = layer(x)
    for i, lm in enumerate([0.1, 0.5, 1.0]):
        layer.lmbd = lm
        assert torch.allclose(z[i : i + 1], layer(x[i : i + 1]), atol=1e-6)
    # larger λ → sparser code and larger reconstruction error
    layer.lmbd = lambdas
    errs = layer.reconstruction_error(x[:1].repeat(3, 1, 1, 1))
    assert errs[0] < errs[1] < errs[2]


def test_n_steps_settable_and_objective_decreases() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 16, 3, padding=1, lmbd=0.1).eval()
    x = torch.randn(2, 3, 8, 8)
    objs = []
    for n in (1, 2, 5, 50):
        layer.n_steps = n
        objs.append(layer.objective(x, layer(x)).sum().item())
    assert objs[-1] < objs[1] < objs[0]
    x_hat = layer.decode(layer(x))
    assert x_hat.shape == x.shape


def test_expansion_stacks_copies_of_input() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 8, 3, padding=1, expansion=2).eval()
    assert layer.weight.shape == (8, 6, 3, 3)
    x = torch.randn(2, 3, 8, 8)
    z = layer(x)
    ref = SF.csc_fista(torch.cat([x, x], 1), layer.weight, layer.step_size, 0.1, n_steps=2, stride=1, padding=1)
    assert torch.allclose(z, ref)
    assert layer.decode(z).shape == x.shape


def test_sparse_coding_linear_shapes_and_lambda() -> None:
    torch.manual_seed(0)
    layer = SparseCodingLinear(10, 32, lmbd=0.05).eval()
    x = torch.randn(4, 10)
    z = layer(x)
    assert z.shape == (4, 32) and (z >= 0).all()
    z3 = layer(x.view(2, 2, 10))
    assert z3.shape == (2, 2, 32) and torch.allclose(z3.view(4, 32), z)
    assert layer.decode(z).shape == (4, 10)
    L = torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() ** 2
    assert abs(0.9 / layer.step_size.item() - L) / L < 1e-3
    with pytest.raises(ValueError, match="expects"):
        layer(torch.randn(2, 2, 2, 10))


def test_set_lmbd_first_and_all() -> None:
    from sdnet_cli import create_model, csc_layers

    m = create_model("sdnet18_all", num_classes=10)
    set_lmbd(m, 0.7, "first")
    lms = [layer.lmbd for layer in csc_layers(m)]
    assert lms[0] == 0.7 and all(v == 0.1 for v in lms[1:])
    set_lmbd(m, 0.3, "all")
    assert all(layer.lmbd == 0.3 for layer in csc_layers(m))
    with pytest.raises(ValueError, match="no CSC layer"):
        set_lmbd(create_model("resnet18", num_classes=10), 0.5)


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        CSCConv2d(3, 8, 3, stride=0)
    with pytest.raises(ValueError, match="n_steps"):
        CSCConv2d(3, 8, 3, n_steps=0)
    assert "lmbd=0.1, mu=0, n_steps=2" in repr(CSCConv2d(3, 8, 3, padding=1))


def test_eval_reinits_a_never_set_step_size_after_new_weights_only() -> None:
    torch.manual_seed(0)
    layer = CSCConv2d(3, 8, 3, padding=1).eval()
    x = torch.randn(2, 3, 10, 10)
    s_init = layer.step_size.item()
    with torch.no_grad():
        layer.weight.copy_(SF.normalize_atoms(torch.randn(8, 3, 3, 3)))  # e.g. convert copying a conv's weights
    layer(x)
    want = CSCConv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        want.weight.copy_(layer.weight)
    want.init_step_size()
    assert layer.step_size.item() == want.step_size.item() != s_init
    layer.set_step_size(0.0123)  # a step size someone else sets (a hook, a training state) is theirs
    with torch.no_grad():
        layer.weight.mul_(1.0)
    layer(x)
    assert layer.step_size.item() == pytest.approx(0.0123)


@pytest.mark.parametrize("name", ["sdnet18", "sdnet18_all"])
def test_two_training_forwards_then_one_backward(name: str) -> None:
    """Gradient accumulation over two forwards (timm's prune contract, siamese inputs): the second training
    forward modifies nothing the first one's graph saved (atoms the previous training forward renormalised are
    left alone; the tracked step size is coded with as a copy)."""
    import sdnet_cli as sd

    torch.manual_seed(0)
    m = sd.create_model(name, num_classes=3, width=8).train()
    x1, x2 = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    (m(x1).sum() + m(x2).sum()).backward()
    both = [p.grad.clone() for p in m.parameters()]
    w = m.layer0[0].weight
    assert torch.allclose(w.detach().flatten(1).norm(dim=1), torch.ones(w.shape[0]), atol=1e-5)
    version = w._version
    m(x1)
    assert w._version == version  # weights the last training forward renormalised are not rewritten
    with torch.no_grad():
        w.mul_(2)
    m(x1)
    assert torch.allclose(w.detach().flatten(1).norm(dim=1), torch.ones(w.shape[0]), atol=1e-5)  # changed: renormalised
    assert all(g.isfinite().all() for g in both)

"""The per-step step-size path reads nothing back from the device: fixed iteration counts, eigenvalues on the device.

A host read of a tensor value is ``aten._local_scalar_dense`` (``.item()``, ``float()``, ``bool()``, ``if t:``);
``torch.linalg.eigh`` checks its status on the host on CUDA. A dispatch mode records every aten op of the
per-step work (``StepSizeKeeper.after_step`` and a training forward's power iteration); the same work must
also trace into one graph under ``torch.compile(fullgraph=True)``, which refuses any host read.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sdnet_cli import create_model
from sdnet_cli.config import TrainSection
from sdnet_cli.engine.step_sizes import WARMUP_STEPS, StepSizeKeeper
from sdnet_cli.layers import CSCConv2d, SparseCodingLinear, csc_layers, track_step_sizes
from sdnet_cli.layers import functional as SF
from sdnet_cli.layers import spectral as SP

aten = torch.ops.aten
HOST_READS = {aten._local_scalar_dense, aten.item, aten.is_nonzero}
HOST_EIGH = {aten._linalg_eigh, aten.linalg_eigh, aten.linalg_eigvalsh}


class OpLog(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: set = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func.overloadpacket)
        return func(*args, **(kwargs or {}))


def set_up(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    model.train()(x)  # the first forward sets every step size (eager Lanczos to tolerance: reads allowed)
    return model


@pytest.mark.parametrize("name", ["sdnet18", "sdnet18_all"])
def test_keeper_and_training_forward_make_no_host_read(name: str) -> None:
    model = set_up(create_model(name, num_classes=10), torch.randn(2, 3, 8, 8))
    keeper = StepSizeKeeper(model, every=TrainSection.step_size_every)  # the engine's default schedule
    layer = next(m for m in model.modules() if isinstance(m, CSCConv2d))
    with torch.no_grad(), OpLog() as log:
        for step in (1, *range(WARMUP_STEPS + 1, WARMUP_STEPS + 1 + keeper.every)):  # warm-up, one full turn
            keeper.after_step(step)
        layer._prepare_forward(torch.randn(2, 3, 8, 8))  # what a training forward does before FISTA
    assert aten.convolution in log.ops  # the products with DᵀD did run under the recorder
    assert not log.ops & (HOST_READS | HOST_EIGH), log.ops & (HOST_READS | HOST_EIGH)


def test_the_converge_path_does_read_the_host() -> None:
    """Control: the recorder sees host reads where there are some (Lanczos with a tolerance)."""
    layer = CSCConv2d(3, 8, 3, padding=1)
    with torch.no_grad(), OpLog() as log:
        layer.converge_step_size((3, 8, 8))
    assert log.ops & HOST_READS


def test_per_step_tracking_traces_into_one_graph() -> None:
    """``track_step_sizes`` and a layer's per-forward tracking compile with fullgraph=True (no break, no host
    read) and compute what eager does."""
    torch._dynamo.reset()
    torch.manual_seed(0)  # the same models and input whatever ran before
    x = torch.randn(2, 3, 8, 8)
    eager = set_up(create_model("sdnet18", num_classes=10), x)
    twin = create_model("sdnet18", num_classes=10)
    twin.load_state_dict(eager.state_dict())
    set_up(twin, x)
    with torch.no_grad():
        for a, b in zip(eager.parameters(), twin.parameters()):
            b.copy_(a)
    track = torch.compile(lambda m: track_step_sizes(m, 3), backend="aot_eager", fullgraph=True)
    a, b = csc_layers(eager)[0], csc_layers(twin)[0]
    step = 0.05 * torch.randn(a.weight.shape, generator=torch.Generator().manual_seed(0))
    for layer in (a, b):
        with torch.no_grad():
            layer.weight.add_(step)  # as an optimizer step would (also breaking unit norm)
    s0 = a.step_size.clone()
    track_step_sizes(eager, 3)
    track(twin)
    assert abs(a.step_size.item() / s0.item() - 1) > 1e-3  # it did track a moved dictionary
    torch.testing.assert_close(b.step_size, a.step_size, rtol=1e-5, atol=0)
    # the tracked vector (unit norm, 4096 entries of ~0.016): rounding differs between the graphs
    torch.testing.assert_close(b._v, a._v, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.weight, a.weight)


def test_fixed_count_lanczos_and_small_eigensolver_match_dense() -> None:
    g = torch.Generator().manual_seed(5)
    w = SF.normalize_atoms(torch.randn(12, 3, 3, 3, generator=g, dtype=torch.float64))
    gram = SP.csc_gram(w, 1, 1)
    n = 12 * 6 * 6
    dense = torch.stack([gram(e.reshape(1, 12, 6, 6)).reshape(-1) for e in torch.eye(n, dtype=torch.float64)])
    evals = torch.linalg.eigvalsh(dense)
    v = torch.randn(1, 12, 6, 6, generator=g, dtype=torch.float64)
    eig, u = SP.lanczos(gram, v, 60)
    assert abs(eig.item() - evals[-1].item()) / evals[-1].item() < 1e-10
    assert (gram(u) - eig * u).norm().item() < 1e-4 * eig.item()
    t = torch.randn(7, 7, generator=g, dtype=torch.float64)
    t = t @ t.T
    theta, y = SP.top_eigenpair_psd(t)
    assert theta.item() == pytest.approx(torch.linalg.eigvalsh(t)[-1].item(), rel=1e-12)
    assert (t @ y - theta * y).norm().item() < 1e-8 * theta.item()


def test_exhausted_krylov_space_stays_finite() -> None:
    """A code space smaller than the iteration count (SparseCodingLinear with 3 atoms): exact, no NaN."""
    layer = SparseCodingLinear(5, 3)
    layer.train()(torch.randn(4, 5))
    layer.track_step_size(8)
    L = torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item() ** 2
    assert torch.isfinite(layer._v).all()
    assert layer.step_size.item() == pytest.approx(0.9 / L, rel=1e-6)

"""ONNX export of an eval-mode model (the unrolled FISTA included) and its check with onnxruntime.

In eval mode every CSC layer uses its stored ``step_size`` buffer, so the graph is a fixed sequence of
``conv2d`` / ``conv_transpose2d`` / ``relu`` ops (``n_steps`` FISTA steps per layer) with the batch axis
dynamic. We use the TorchScript-based exporter (``dynamo=False``): it exports the same graph with the
same outputs several times faster than the ``torch.export`` exporter. Constant folding is off: with it the
exporter stores each dictionary once per use (``Dᵀ`` conv, ``D`` transposed conv), which multiplies the
file's size; onnxruntime optimises at load time. (Both figures: docs/benchmarks.md, "Figures behind design
choices".)
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from ..errors import UsageError

ONNX_NAME = "model.onnx"
ONNX_TOLERANCE = 1e-4
OPSET = 17


def prepare_for_export(model: nn.Module, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """Put ``model`` in eval mode and run one eager forward (a CSC layer whose step size was never set or
    loaded inits it from its weights there; nothing else changes); returns that input.

    ``input_shape`` = ``(C, H, W)``; the returned example input has shape ``(2, C, H, W)``.
    """
    model.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, *input_shape), generator=gen)
    with torch.no_grad():
        model(x)
    return x


def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int], *, dynamo: bool = False,
                opset: int = OPSET) -> Path:
    """Write ``model`` (eval mode) as ONNX to ``path`` (atomically): input ``input`` ``(N, C, H, W)``, output ``logits``."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UsageError("--format onnx needs the onnx package: pip install 'sdnet[onnx]'") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = prepare_for_export(model, input_shape)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        kwargs: dict = {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}, "do_constant_folding": False}
        if dynamo:
            kwargs = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), tmp, input_names=["input"], output_names=["logits"],
                              opset_version=opset, dynamo=dynamo, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def onnx_max_abs_diff(model: nn.Module, path: str | Path, x: torch.Tensor) -> float | None:
    """``max |onnxruntime(x) − model(x)|`` over the logits, or ``None`` when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    out = session.run(["logits"], {"input": x.numpy().astype(np.float32)})[0]
    return float(np.abs(out - ref).max())


def check_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int], batch: int = 3,
               tolerance: float = ONNX_TOLERANCE) -> float | None:
    """Compare the ONNX file with PyTorch on a random batch; raises ``RuntimeError`` above ``tolerance``.

    Returns the max absolute logit difference, or ``None`` when onnxruntime is not installed.
    """
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((batch, *input_shape), generator=gen)
    diff = onnx_max_abs_diff(model, path, x)
    if diff is not None and not diff <= tolerance:
        raise RuntimeError(f"{path}: onnxruntime logits differ from PyTorch by {diff:.3g} (> {tolerance:g})")
    return diff

"""``visualize``: compute every requested view of a model and write PNGs, JSON and ``index.html``.

Items (``what``): ``dictionary``, ``features``, ``sparsity``, ``convergence``, ``lambda``. Everything is
validated before any file is written, so a bad request fails fast and leaves no half-made output.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from ..fsio import atomic_write_json
from ..models.files import ModelConfig
from . import plots
from .convergence import convergence_stats
from .data import VizBatch
from .dictionary import dictionary_grid
from .display import views
from .html import write_index
from .inversion import decode_single_layer, default_points, invert_features, point_depth, stack_ops
from .lmbds import DEFAULT_VIEW_LMBDS, check_lmbds, checked_lmbd_sweep
from .probe import csc_io, require_csc
from .sparsity import sparsity_stats
from ..errors import UsageError
from ..deprecations import renamed_fields

WHAT = ("dictionary", "features", "sparsity", "convergence", "lambda")
DECODE_MODES = ("auto", "layer", "stack")


def parse_what(text: str | Sequence[str] | None) -> list[str]:
    """``'dictionary,features'`` (or ``'all'``) → the list of items; unknown items raise ``ValueError`` naming the valid ones."""
    if text is None:
        return list(WHAT)
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not items or items == ["all"]:
        return list(WHAT)
    bad = [t for t in items if t not in WHAT]
    if bad:
        raise UsageError(f"unknown --what item(s) {', '.join(map(repr, bad))}; valid: {', '.join(WHAT)} (or all)")
    return [w for w in WHAT if w in items]


@renamed_fields({"lambdas": "lmbds", "lambda_images": "lmbd_images"})
@dataclass(frozen=True)
class FigureOptions:
    """Which figures :func:`visualize` draws and how much work to spend on them (``sdnet visualize`` builds one
    from :class:`~sdnet_cli.viz.run.VisualizeOptions`). The λ values are checked here, at construction, when the
    λ figure is drawn, and nowhere below (frozen: what was checked stays as checked)."""

    what: list[str] = field(default_factory=lambda: list(WHAT))
    decode: str = "auto"
    points: list[str] | None = None
    lmbds: Sequence[float] = DEFAULT_VIEW_LMBDS
    max_steps: int = 50
    opt_steps: int = 300
    convergence_images: int = 4
    lmbd_images: int = 4

    def __post_init__(self) -> None:
        if "lambda" in self.what:
            check_lmbds(self.lmbds)


def resolve_decode(model: nn.Module, mode: str) -> str:
    """``'stack'`` or ``'layer'``: ``auto`` picks the whole stack when the model can be inverted."""
    if mode not in DECODE_MODES:
        raise UsageError(f"unknown --decode {mode!r}; valid: {', '.join(DECODE_MODES)}")
    if mode == "layer":
        return "layer"
    try:
        stack_ops(model)
    except UsageError:
        if mode == "stack":
            raise
        return "layer"
    return "stack"


def _validate(model: nn.Module, opts: FigureOptions) -> str:
    """Check the whole request before any work; returns the decoding mode for ``features``."""
    require_csc(model)
    decode = "layer"
    if "features" in opts.what:
        # --layers names points of the whole stack: with auto, ask for the stack (and its reason if impossible)
        decode = resolve_decode(model, "stack" if opts.points and opts.decode == "auto" else opts.decode)
        if decode == "stack":
            ops = stack_ops(model)
            for p in opts.points or default_points(model):
                point_depth(ops, p)
        elif opts.points:
            raise UsageError("--layers picks points for whole-stack decoding; --decode layer shows the first CSC layer")
    if "convergence" in opts.what and not 1 <= opts.max_steps <= opts.opt_steps:
        raise UsageError(f"need 1 <= --max-steps ({opts.max_steps}) <= --opt-steps ({opts.opt_steps})")
    return decode


def visualize(model: nn.Module, config: ModelConfig, batch: VizBatch, output: str | Path,
              options: FigureOptions | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the requested figures and ``index.html`` into ``output``; returns a summary (files, numbers, seconds).

    The model is put in eval mode; λ and ``n_steps`` of its layers are restored after the λ sweep.
    """
    opts = options or FigureOptions()
    say = progress or (lambda _msg: None)
    model.eval()
    decode = _validate(model, opts)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    figures: list[dict[str, str]] = []
    data_files: list[str] = []
    summary: dict[str, Any] = {"output": str(out), "architecture": config.architecture, "dataset": batch.dataset,
                               "num_images": int(batch.x.shape[0]), "what": opts.what}

    def fig(what: str, file: str, caption: str) -> None:
        figures.append({"what": what, "file": file, "caption": caption})

    def data(file: str, obj: Any) -> None:
        atomic_write_json(out / file, obj)
        data_files.append(file)

    with torch.no_grad():
        say("coding the batch")
        records = csc_io(model, batch.x)
        views_of = {
            "dictionary": lambda: _dictionary(records[0], batch, out, fig, data),
            "features": lambda: _features(model, batch, decode, opts, out, fig, data),
            "sparsity": lambda: _sparsity(records, out, fig, data),
            "convergence": lambda: _convergence(records, batch, opts, out, fig, data),
            "lambda": lambda: _lmbd_section(records[0], batch, opts, out, fig, data),
        }
        for what in opts.what:
            say(_PROGRESS[what].format(decode=decode))
            result = views_of[what]()
            if result is not None:
                summary[what] = result

    first = records[0]
    facts = {"model": config.architecture, "stem_type": config.stem_type, "model args": json.dumps(config.model_args),
             "dataset": batch.dataset, "images": int(batch.x.shape[0]),
             "CSC layers": len(records), "first layer λ / n_steps": f"{first.layer.lmbd} / {first.layer.n_steps}"}
    write_index(out, f"sdnet visualize: {config.architecture}", facts, figures, data_files)
    summary["figures"] = [f["file"] for f in figures]
    summary["data"] = data_files
    summary["index"] = str(out / "index.html")
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


_PROGRESS = {"dictionary": "dictionary", "features": "features ({decode} decoding)", "sparsity": "sparsity",
             "convergence": "convergence (FISTA to the optimum, every CSC layer)",
             "lambda": "lambda sweep (first CSC layer)"}


def _dictionary(first, batch, out, fig, data) -> None:
    grid, order, usage = dictionary_grid(first.layer, first.code)
    k = first.layer.kernel_size
    plots.plot_dictionary(grid, usage[order], f"{first.name}: {len(order)} atoms {k}×{k}, most used first",
                          out / "dictionary.png")
    fig("dictionary", "dictionary.png",
        f"Atoms of the first CSC layer ({first.name}), each rescaled to [0, 1] on its own, sorted by usage = "
        f"fraction of code positions where the atom is active on {batch.x.shape[0]} {batch.dataset} test images "
        f"(most used top-left; unused atoms: {int((usage == 0).sum())} of {len(usage)}).")
    data("dictionary.json", {"layer": first.name, "order": order.tolist(), "usage": usage.tolist()})


def _sparsity(records, out, fig, data) -> dict[str, float]:
    rows = sparsity_stats(records)
    data("sparsity.json", rows)
    plots.plot_sparsity(rows, out / "sparsity.png")
    plots.plot_code_histograms(rows, out / "sparsity_hist.png")
    fig("sparsity", "sparsity.png", "Fraction of non-zero code entries of every CSC layer on the batch "
        "(bars: mean; whiskers: range over images).")
    fig("sparsity", "sparsity_hist.png", "Histogram of the non-zero code values of every CSC layer (height: log10(count + 1)); the title gives the fraction of non-zero entries.")
    return {r["layer"]: r["nonzero_fraction"] for r in rows}


def _convergence(records, batch, opts, out, fig, data) -> dict[str, float]:
    rows = convergence_stats(records, opts.max_steps, opts.opt_steps, opts.convergence_images)
    data("convergence.json", rows)
    plots.plot_convergence(rows, out / "convergence.png")
    fig("convergence", "convergence.png",
        f"Lasso objective F(z_k) = λ‖z‖₁ + μ/2‖z‖² + ½‖x − Dz‖² of each CSC layer on its own input "
        f"({min(opts.convergence_images, batch.x.shape[0])} images) after k = 1…{opts.max_steps} FISTA iterations, "
        f"as the gap to F* = best objective within {opts.opt_steps} iterations; dashed: the n_steps the model "
        "runs with.")
    return {r["layer"]: r["gap_at_trained"] for r in rows}


def _features(model, batch, decode, opts, out, fig, data) -> dict[str, float]:
    x = batch.x
    if decode == "stack":
        decoded = invert_features(model, x, opts.points)
        how = ("decoded through the whole stack (inverse BatchNorm with running statistics and D z, layer by "
               "layer down to the input)")
    else:
        layer_in, x_hat = decode_single_layer(model, x)
        decoded = {"D z (first CSC layer)": x_hat}
        how = "decoded through the first CSC layer only (D z)"
    energy = x.flatten(1).pow(2).sum(1).clamp_min(1e-20)
    errors = {p: float(((x - h).flatten(1).pow(2).sum(1) / energy).mean()) for p, h in decoded.items()}
    for view, label in (("minmax", "min–max"), ("histeq", "histogram-equalised")):
        rows = [("input", views(x, batch.mean, batch.std)[view])]
        rows += [(p, views(h, batch.mean, batch.std)[view]) for p, h in decoded.items()]
        name = f"features_{decode}_{view}.png"
        plots.plot_image_rows(rows, f"Input vs hidden features {how.split(' (')[0]} ({label} view)", out / name)
        fig("features", name, f"Top row: {batch.x.shape[0]} {batch.dataset} test images; below: the sparse code at "
            f"each point {how}. Each image and channel is de-normalised and rescaled to [0, 1] "
            f"({label} view). Relative error ‖x − x̂‖²/‖x‖²: "
            + ", ".join(f"{p} {e:.3f}" for p, e in errors.items()) + ".")
    data("features.json", {"decode": decode, "relative_error": errors})
    return errors


def _lmbd_section(first, batch, opts, out, fig, data) -> dict[str, Any]:
    sweep = checked_lmbd_sweep(first.layer, first.input, opts.lmbds, keep=opts.lmbd_images)
    decoded = sweep.pop("decoded")
    data("lambda.json", {"layer": first.name, **sweep})
    plots.plot_lmbd_curves(sweep, first.name, out / "lambda.png")
    fig("lambda", "lambda.png", f"First CSC layer ({first.name}) with {sweep['n_steps']} FISTA steps: relative "
        "reconstruction error ‖x − Dz‖²/‖x‖² and fraction of non-zero code entries as λ grows (the test-time "
        "robustness knob).")
    k = decoded.shape[1]
    inputs = views(first.input[:k], batch.mean, batch.std)["minmax"]
    dec = [views(decoded[i], batch.mean, batch.std)["minmax"] for i in range(len(sweep["lambdas"]))]
    rows = [(f"image {j}", torch.cat([inputs[j:j + 1]] + [d[j:j + 1] for d in dec])) for j in range(k)]
    cols = ["input"] + [f"λ={lmbd:g}" for lmbd in sweep["lambdas"]]
    plots.plot_image_rows(rows, f"{first.name}: D z as λ grows (min–max view)", out / "lambda_decoded.png", cols)
    fig("lambda", "lambda_decoded.png", "Each row: a test image, then its first-layer decoding D z for growing λ "
        "(each image and channel rescaled to [0, 1] on its own).")
    return {"lambdas": sweep["lambdas"], "rel_error": sweep["rel_error"], "nonzero_fraction": sweep["nonzero_fraction"]}

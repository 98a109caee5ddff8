"""``run(VisualizeOptions) -> VisualizeReport``: what ``sdnet visualize`` does, as one library call.

Load the model and a class-balanced batch of its test images, draw the requested views into a folder beside
the output and switch it in as a whole (:func:`sdnet_cli.outputs.write_output`): a failure or a kill leaves the
previous output complete. The output follows the one output rule (:func:`sdnet_cli.outputs.check_output_dir`): a
new or empty folder or an earlier visualize output (its other files carried over), never the model itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..checks import require_int
from ..errors import UsageError
from ..outputs import OutputDir, check_output_dir, write_output
from ..deprecations import renamed_fields
from ..hub.resolve import load_model_with_config, local_model_dir
from .data import load_batch
from .lmbds import DEFAULT_VIEW_LMBDS
from .report import DECODE_MODES, WHAT, FigureOptions, parse_what, visualize

INDEX = "index.html"


def earlier_output(folder: Path) -> list[str] | None:
    """The files of a visualize output written before outputs had a manifest: an ``index.html`` titled
    ``sdnet visualize`` among PNG/JSON files only (``None``: not one)."""
    names = os.listdir(folder)
    try:
        ours = b"<title>sdnet visualize" in (folder / INDEX).read_bytes()[:4096]
    except OSError:
        return None
    return names if ours and all(n == INDEX or n.endswith((".png", ".json")) for n in names) else None


@renamed_fields({"lambdas": "lmbds"})
@dataclass(frozen=True)
class VisualizeOptions:
    """What ``sdnet visualize`` draws, from which model and data, into which folder (validated at construction)."""

    model: str
    what: tuple[str, ...] = WHAT
    output: Path = Path("viz")
    dataset: str | None = None
    data_root: str | None = None
    image_size: int | None = None
    num_images: int = 8
    decode: str = "auto"
    points: tuple[str, ...] | None = None
    lmbds: tuple[float, ...] = DEFAULT_VIEW_LMBDS
    max_steps: int = 50
    opt_steps: int = 300
    threads: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "what", tuple(parse_what(list(self.what))))
        object.__setattr__(self, "output", Path(self.output))
        if self.decode not in DECODE_MODES:
            raise UsageError(f"unknown --decode {self.decode!r}; valid: {', '.join(DECODE_MODES)}")
        require_int("--num-images", self.num_images, 1)
        require_int("--threads", self.threads, 0)
        require_int("--max-steps", self.max_steps, 1)
        require_int("--opt-steps", self.opt_steps, 1)
        if self.image_size is not None:
            require_int("--image-size", self.image_size, 1)
        drawing = FigureOptions(what=list(self.what), decode=self.decode, lmbds=tuple(self.lmbds),
                                points=list(self.points) if self.points else None, max_steps=self.max_steps,
                                opt_steps=self.opt_steps)  # checks the λ values, the one time they are checked
        object.__setattr__(self, "_drawing", drawing)
        self.output_dir()

    def output_dir(self) -> OutputDir:
        """``--output`` checked against the output rule (a run or model folder given is never written)."""
        local = local_model_dir(self.model) if Path(self.model).exists() else None
        sources = [Path(self.model), *([local] if local is not None else [])] if Path(self.model).exists() else []
        return check_output_dir(self.output, "visualize", sources=sources, layout=earlier_output)

    def drawing(self) -> FigureOptions:
        """The drawing part of the options (made and checked at construction)."""
        return self._drawing  # type: ignore[attr-defined]


@dataclass
class VisualizeReport:
    """Where the figures went and the numbers behind them (``summary``: per-view statistics)."""

    output: str
    index: str
    figures: list[str]
    data: list[str]
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


def run(opts: VisualizeOptions, progress: Callable[[str], None] | None = None) -> VisualizeReport:
    """Draw ``opts.what`` for ``opts.model`` into ``opts.output`` (replaced as a whole); ``progress(msg)`` per view.

    ``threads > 0`` sets torch's CPU threads for the call only (restored afterwards).
    """
    net, config = load_model_with_config(opts.model)
    batch = load_batch(config, opts.dataset, opts.num_images, opts.data_root, opts.image_size)
    old_threads = torch.get_num_threads()
    try:
        if opts.threads:
            torch.set_num_threads(opts.threads)
        summary = write_output(opts.output_dir(), lambda staged: visualize(net, config, batch, staged,
                                                                          opts.drawing(), progress))
    finally:
        torch.set_num_threads(old_threads)
    summary.update(output=str(opts.output), index=str(opts.output / INDEX))
    return VisualizeReport(output=summary["output"], index=summary["index"], figures=summary["figures"],
                           data=summary["data"], seconds=summary["seconds"], summary=summary)

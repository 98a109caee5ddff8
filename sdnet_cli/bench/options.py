"""``BenchOptions``: what ``sdnet bench`` measures, validated at construction (what it found: :mod:`.report`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

from ..checks import require_int
from ..errors import UsageError
from ..deprecations import renamed_fields
from ..models.stem_type import OLD_FIELD
from .step import StepSettings, Workload

DEFAULT_MODELS = ("resnet18", "sdnet18", "sdnet18_all")


def parse_models(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``'resnet18,sdnet18'`` → ``('resnet18', 'sdnet18')``; an empty list is a :class:`UsageError`."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [n for n in names if n]
    if not names:
        raise UsageError("no model given; pass e.g. --models resnet18,sdnet18")
    return tuple(names)


@renamed_fields(OLD_FIELD)
@dataclass(frozen=True, kw_only=True)
class BenchOptions(StepSettings):
    """Models timed side by side on one workload (see :func:`sdnet_cli.bench.run`); the step itself is set by the
    :class:`~sdnet_cli.bench.step.StepSettings` fields (``device`` here defaults to ``auto``).

    ``steps`` interleaved rounds of ``inner`` steps (default 1 on CPU, 10 on CUDA) after ``warmup`` untimed
    steps; ``memory``: peak memory of ``memory_steps`` steps per model; ``memory_reuse``: on CPU keep freed tensor
    memory in the process (:func:`sdnet_cli.malloc.keep_freed_memory`); ``output``: also write the report's JSON
    to this file (replaced as a whole).
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    device: str = "auto"
    steps: int = 10
    warmup: int = 2
    inner: int | None = None
    memory: bool = True
    memory_steps: int = 2
    memory_reuse: bool = True
    output: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", parse_models(self.models))
        if self.output is not None:
            if Path(self.output).is_dir():
                raise UsageError(f"--output {self.output} is a folder; give a file name")
        for name, least in (("steps", 1), ("warmup", 0), ("memory_steps", 1)):
            require_int(name, getattr(self, name), least)
        if self.inner is not None:
            require_int("inner", self.inner, 1)
        self.workloads  # builds (so checks) every workload now, before anything runs  # noqa: B018

    @cached_property
    def workloads(self) -> tuple[Workload, ...]:
        """One :class:`Workload` per model, in order (every other ``Workload`` field is the option of that name)."""
        shared = {f.name: getattr(self, f.name) for f in fields(Workload) if f.name != "model"}
        return tuple(Workload(m, **shared) for m in self.models)

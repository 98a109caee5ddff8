"""``BenchReport``: what ``sdnet bench`` found, one :class:`BenchRow` per model (the options: :mod:`.options`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BenchRow:
    """One model's figures. Times in ms per step (medians over rounds); ``ratio``: median over rounds of this
    model's time over the first model's in the same round; ``step_size_ms``: the engine's step-size tracking alone,
    its mean per step (one full turn of the keeper's schedule over its period; each round of ``ms_per_step``
    runs that step's share), ``step_size_share`` = its paired ratio to the whole step."""

    model: str
    params: int
    ms_per_step: float
    img_per_s: float
    min_ms_per_step: float
    times_ms: list[float]
    ratio: float
    ratio_of_medians: float
    step_size_ms: float | None = None
    step_size_share: float | None = None
    memory_mb: float | None = None
    total_mb: float | None = None
    memory_source: str | None = None
    memory_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class BenchReport:
    """``machine`` (GPU name, or CPU model and threads), ``torch`` version, ``settings`` and one row per model."""

    machine: str
    torch: str
    settings: dict[str, Any]
    results: list[BenchRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``sdnet bench --json`` prints."""
        return {"machine": self.machine, "torch": self.torch, "settings": dict(self.settings),
                "results": [r.to_dict() for r in self.results]}

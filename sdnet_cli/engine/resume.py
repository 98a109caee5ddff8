"""Resuming a run: its configuration, and what may change between the interrupted run and the resumed one.

A resumed run continues the saved state exactly, so its configuration must be the one that state was made
with (recorded in the state itself, ``extra.config``; ``config.yaml`` for states without it), except for the
keys in :data:`SAFE_ON_RESUME`: how long to train (``train.epochs``, not below the epochs done), the
hardware and the logging. Every other change (the model, the data and its size, the optimizer and its
schedule, the batch size, the seed, …) would make the weights, the optimizer state, ``config.yaml`` and
``metrics.jsonl`` disagree, so :func:`check_resume` refuses it with one line naming the key — before anything
is built or written (``config.yaml`` is rewritten only when the resumed run starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config, apply_overrides, load_config, merge_dict, set_value
from ..errors import MissingFileError, UsageError
from .state import LoopState, read_state
from .rundir import newest_run

SAFE_ON_RESUME = frozenset({
    "train.epochs", "train.threads", "train.cpu_memory_reuse", "train.tensorboard", "train.checkpoint_every",
    "train.eval_batch_size", "train.device", "train.compile", "train.channels_last", "train.recompute",
    "train.verify_ddp", "train.output", "data.root", "data.download", "data.workers", "model.sync_bn",
})
"""Keys a resumed run may set differently from the run it continues (the rest must stay as they were)."""


def resume_config(output: str | Path | None, flags: dict[str, Any] | None = None,
                  overrides: list[str] | None = None) -> Config:
    """The configuration to continue a run with: the run's own ``config.yaml`` (``output``, default the
    newest run with a saved state under ``runs/``), then ``flags`` (``key: value``, ``None`` skipped) and
    ``--set`` ``overrides``; ``train.output`` is the run. Reads only; :func:`check_resume` (called by
    ``train``) then refuses changes a resume cannot honour."""
    if output is not None:
        out = Path(output)
    else:
        found = newest_run("runs")
        if found is None:
            raise UsageError("--resume needs --output DIR (no run with a saved state found under runs/)")
        out = found
    if not (out / "config.yaml").is_file():
        raise MissingFileError(f"cannot resume: {out} is not a run directory (no config.yaml); "
                               "pass the --output of the interrupted run")
    cfg = load_config(out / "config.yaml")
    for key, value in {**(flags or {}), "train.output": str(out)}.items():
        if value is not None:
            set_value(cfg, key, value)
    return apply_overrides(cfg, overrides or [])


def _text(value: Any) -> str:
    """``value`` as ``--set`` takes it (``null``, ``true``, ``1,2``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "[]"
    return str(value)


def _flat(cfg: Config) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, section in cfg.to_dict().items() for k, v in section.items()}


def changes(saved: Config, cfg: Config) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for every key that differs, in schema order."""
    old, new = _flat(saved), _flat(cfg)
    return [(k, old[k], new[k]) for k in new if old.get(k) != new[k]]


def recorded_config(target: Path, meta: dict[str, Any]) -> Config:
    """The configuration the saved state was made with: its ``extra.config``, else the run's ``config.yaml``."""
    data = meta["extra"].get("config")
    if data is None:
        return load_config(target / "config.yaml")
    try:
        return merge_dict(Config(), data)
    except UsageError as e:
        raise UsageError(f"training state in {target / 'state'} is damaged: extra.config: {e}") from None


def check_resume(target: Path, cfg: Config) -> LoopState:
    """Raise a :class:`UsageError` unless ``cfg`` can continue the saved state of run ``target``: the state is
    complete and well-formed, only :data:`SAFE_ON_RESUME` keys differ from its recorded configuration, and
    ``train.epochs`` is not below the epochs already done. Returns the saved loop position. Reads only."""
    meta, _ = read_state(target / "state")
    saved = recorded_config(target, meta)
    for key, old, new in changes(saved, cfg):
        if key not in SAFE_ON_RESUME:
            raise UsageError(f"cannot change {key} on resume ({_text(old)} -> {_text(new)}): the run in {target} was "
                             f"trained with {_text(old)}; start a new run (another --output) to change it, or "
                             f"resume with --set {key}={_text(old)} (a resume may change only "
                             f"{', '.join(sorted(SAFE_ON_RESUME - {'train.output'}))})")
    loop = LoopState(**meta["loop"])
    done = loop.epoch + (1 if loop.batch else 0)
    if cfg.train.epochs < done:
        raise UsageError(f"train.epochs={cfg.train.epochs} is below the {done} epoch(s) the run in {target} has "
                         f"already {'started' if loop.batch else 'done'}; set --epochs {done} or more")
    return loop

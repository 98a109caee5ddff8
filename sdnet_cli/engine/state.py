"""Training state for exact resume: safetensors (tensors) + JSON (everything else), no pickle.

A state is the pair ``state/ckpt-<step>-<token>.safetensors`` + ``state/ckpt-<step>-<token>.json``, and the
``state/`` folder holds exactly one pair: a new state is written into a staging sibling and replaces the
folder as a whole (:func:`sdnet_cli.fsio.staged_dir`), so a kill at any moment leaves the previous complete
state or the new one, never a mix of two steps. The JSON carries a random token that the safetensors header
repeats: a pair counts only when both exist and the tokens match.

Contents: model weights and buffers (``model.*``), each CSC layer's power-iteration vector
(``csc_v.<i>``), optimizer state (``optim.<param>.<name>``; its scalars and param groups in JSON), the
AMP grad-scaler, RNG states (torch, CUDA, numpy, python) and the loop position (epoch, batches done,
global step, best metric, per-epoch history, running sums of the epoch in progress).
"""

from __future__ import annotations

import json
import random
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

from ..fsio import atomic_write_json, staged_dir
from ..layers import csc_layers
from ..models.files import atomic_save_safetensors, load_state_strict, state_dict_tensors
from ..errors import MissingFileError, UsageError
from .state_schema import check_optimizer_fits, check_record

FORMAT = "sdnet-train-state"
_NAME = re.compile(r"^ckpt-(\d+)-[0-9a-f]+\.json$")


@dataclass
class LoopState:
    """Where the loop stands: ``epoch`` in progress (0-based) with ``batch`` batches of it done."""

    epoch: int = 0
    batch: int = 0
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    meter: dict[str, float] = field(default_factory=dict)


# -- RNG ------------------------------------------------------------------------------------------
def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """RNG states of torch (CPU and CUDA), numpy and python as ``(tensors, json)``."""
    tensors = {"rng.torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s.clone()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


# -- optimizer ------------------------------------------------------------------------------------
def flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors ``optim.<param>.<name>`` and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = v.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[name] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, d in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(d)
    return {"state": state, "param_groups": meta["param_groups"]}


# -- save / load ----------------------------------------------------------------------------------
def _pairs(directory: Path) -> list[tuple[tuple[int, int], Path]]:
    """JSON records, newest first (by global step, then modification time)."""
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            try:
                found.append(((int(m.group(1)), p.stat().st_mtime_ns), p))
            except OSError:
                continue
    return sorted(found, reverse=True)


def save_state(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, loop: LoopState,
               scaler: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Make ``directory`` hold one complete training state (written beside it, switched in as a whole);
    ``scaler`` is anything with ``state_dict()`` (the AMP grad scaler) or ``None``. Returns the JSON path."""
    directory = Path(directory)
    with staged_dir(directory) as staged:
        name = _write_pair(staged, model, optimizer, loop, scaler, extra)
    return directory / name


def _write_pair(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, loop: LoopState,
                scaler: Any, extra: dict[str, Any] | None) -> str:
    """Write ``ckpt-<step>-<token>.safetensors`` then its ``.json`` record into ``directory``; the JSON's name."""
    token = secrets.token_hex(16)
    tensors = {f"model.{k}": v for k, v in state_dict_tensors(model).items()}
    for i, layer in enumerate(csc_layers(model)):
        tensors[f"csc_v.{i}"] = layer._v.detach().cpu().contiguous().clone()
    opt_t, opt_meta = flatten_optimizer(optimizer.state_dict())
    rng_t, rng_meta = capture_rng()
    tensors.update(opt_t)
    tensors.update(rng_t)
    base = f"ckpt-{loop.global_step:09d}-{token[:8]}"
    weights = directory / f"{base}.safetensors"
    atomic_save_safetensors(tensors, weights, {"format": FORMAT, "token": token})
    meta = {
        "format": FORMAT, "token": token, "weights": weights.name, "loop": asdict(loop),
        "optimizer": opt_meta, "rng": rng_meta, "scaler": scaler.state_dict() if scaler is not None else None,
        "extra": extra or {},
    }
    atomic_write_json(directory / f"{base}.json", meta)  # the commit record of the pair
    return f"{base}.json"


def _read_pair(json_path: Path) -> tuple[dict[str, Any], Path] | str:
    """``(meta, weights)`` of a complete pair (tokens match), else why not, in words."""
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return f"{json_path} is not readable JSON ({type(e).__name__})"
    if not isinstance(meta, dict) or not isinstance(meta.get("weights"), str) or not isinstance(meta.get("token"), str):
        return f"{json_path} is not a training state record (no weights/token)"
    weights = json_path.parent / Path(meta["weights"]).name
    try:
        with safe_open(str(weights), "pt") as f:
            token = (f.metadata() or {}).get("token")
    except Exception as e:  # noqa: BLE001 - any damage of the weights file = an incomplete pair
        return f"{weights} is missing or not a safetensors file ({type(e).__name__})"
    if token != meta["token"] or meta.get("format") != FORMAT:
        return f"{json_path} and {weights.name} are not one pair (token or format differ)"
    return meta, weights


def find_state(directory: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The newest complete ``(meta, weights_path)`` in ``directory``, or ``None``."""
    for _, path in _pairs(Path(directory)):
        found = _read_pair(path)
        if not isinstance(found, str):
            return found
    return None


def read_state(directory: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest complete pair of ``directory``, its record checked field by field
    (:func:`~sdnet_cli.engine.state_schema.check_record`); a :class:`UsageError` saying what is wrong otherwise."""
    reasons = []
    for _, path in _pairs(Path(directory)):
        found = _read_pair(path)
        if isinstance(found, str):
            reasons.append(found)
            continue
        check_record(path, found[0])
        return found
    why = f" ({reasons[0]})" if reasons else ""
    raise MissingFileError(f"no complete training state in {directory}{why}: nothing to resume")


def _tensors(meta: dict[str, Any], weights: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """The pair's tensors, with the CSC and RNG entries the record needs present and shaped."""
    try:
        tensors = load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - damaged file
        raise UsageError(f"training state {weights} is not a readable safetensors file ({e})") from None
    need: dict[str, tuple[int, ...] | None] = {f"csc_v.{i}": None for i in range(len(csc_layers(model)))}
    need.update({"rng.torch": None, "rng.numpy": (624,)})
    for key, shape in need.items():
        if key not in tensors or (shape is not None and tuple(tensors[key].shape) != shape):
            got = tuple(tensors[key].shape) if key in tensors else "missing"
            raise UsageError(f"cannot resume from {weights}: tensor {key} is {got}, the run's model needs {shape or 'it'}")
    return tensors


def load_state(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: Any = None, restore_rngs: bool = True) -> tuple[LoopState, dict[str, Any]]:
    """Restore the newest complete state of ``directory`` into ``model``/``optimizer``/``scaler`` (and the
    RNGs); returns ``(loop, extra)``. Everything is checked before anything is restored: the record
    (:func:`read_state`), the tensors, and the optimizer against ``optimizer``
    (:func:`~sdnet_cli.engine.state_schema.check_optimizer_fits`). Raises ``FileNotFoundError`` when there is
    no state, :class:`UsageError` for a damaged or mismatched one."""
    meta, weights = read_state(directory)
    tensors = _tensors(meta, weights, model)
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    check_optimizer_fits(weights.with_suffix(".json"), meta["optimizer"], optim, optimizer)
    device = next(model.parameters()).device
    load_state_strict(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, f"training state {weights}")
    for i, layer in enumerate(csc_layers(model)):
        layer._v = tensors[f"csc_v.{i}"].clone().to(device)
        layer._step_size_ready = True
    optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    if scaler is not None and meta["scaler"]:
        scaler.load_state_dict(meta["scaler"])
    if restore_rngs:
        restore_rng(tensors, meta["rng"])
    return LoopState(**meta["loop"]), meta["extra"]

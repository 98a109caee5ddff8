"""The JSON record of a training state, checked field by field before anything uses it.

A state's ``ckpt-<step>-<token>.json`` is written by :mod:`sdnet_cli.engine.state`; read back it is untrusted
like any file. :func:`check_record` accepts exactly the fields that module writes, each of its type, and
raises one :class:`~sdnet_cli.errors.UsageError` naming the file and the first field that is unknown,
missing or of the wrong type — never a raw ``TypeError``/``KeyError`` later. :func:`check_optimizer_fits`
checks the saved optimizer against the one the run's configuration builds (kind, hyperparameters, groups,
tensor shapes) before ``load_state_dict`` sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from ..checks import is_int, is_real
from ..errors import UsageError

Check = Callable[[Any], bool]


def _opt(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def _is_count(v: Any) -> bool:
    return is_int(v) and v >= 0


def _is_meter(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and is_real(x) for k, x in v.items())


def _is_history(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(r, dict) for r in v)


def _is_numpy_rng(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and v[0] == "MT19937" and is_int(v[1]) and is_int(v[2]) and is_real(v[3])


def _is_python_rng(v: Any) -> bool:
    return (isinstance(v, list) and len(v) == 3 and is_int(v[0]) and isinstance(v[1], list) and len(v[1]) == 625
            and all(is_int(x) and 0 <= x < 2**32 for x in v[1]) and (v[2] is None or is_real(v[2])))


def _is_groups(v: Any) -> bool:
    return (isinstance(v, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                        and all(is_int(p) for p in g["params"]) for g in v))


def _is_scalars(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and k.isdigit() and isinstance(d, dict) for k, d in v.items())


RECORD: dict[str, Check] = {"format": _is_str, "token": _is_str, "weights": _is_str, "loop": _is_dict,
                            "optimizer": _is_dict, "rng": _is_dict, "scaler": _opt(_is_dict), "extra": _is_dict}
LOOP: dict[str, Check] = {"epoch": _is_count, "batch": _is_count, "global_step": _is_count,
                          "best_metric": _opt(is_real), "best_epoch": _opt(is_int), "history": _is_history,
                          "meter": _is_meter}
OPTIMIZER: dict[str, Check] = {"param_groups": _is_groups, "scalars": _is_scalars}
RNG: dict[str, Check] = {"numpy": _is_numpy_rng, "python": _is_python_rng}
WHAT: dict[str, str] = {"loop": "an object", "optimizer": "an object", "rng": "an object", "extra": "an object",
                        "scaler": "an object or null", "epoch": "an integer >= 0", "batch": "an integer >= 0",
                        "global_step": "an integer >= 0", "best_metric": "a number or null",
                        "best_epoch": "an integer or null", "history": "a list of objects",
                        "meter": "an object of numbers", "param_groups": "a list of groups with integer params",
                        "scalars": "an object keyed by parameter index",
                        "numpy": "an MT19937 state [kind, pos, has_gauss, gauss]",
                        "python": "a random.getstate() [version, 625 integers, gauss]"}


def _fields(path: Path, where: str, obj: Any, schema: dict[str, Check]) -> None:
    """Exactly the keys of ``schema`` in ``obj``, each passing its check; else a UsageError naming the field."""
    what = f"training state {path} is damaged"
    if not isinstance(obj, dict):
        raise UsageError(f"{what}: {where or 'the record'} must be an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(schema))
    if unknown:
        raise UsageError(f"{what}: unknown field {where}{unknown[0]!s} (not written by sdnet train)")
    for key, check in schema.items():
        if key not in obj:
            raise UsageError(f"{what}: missing field {where}{key}")
        if not check(obj[key]):
            expected = WHAT.get(key, "a string")
            raise UsageError(f"{what}: field {where}{key} must be {expected}, got {type(obj[key]).__name__}")


def check_record(path: Path, meta: Any) -> None:
    """Raise a :class:`UsageError` unless ``meta`` (the parsed JSON of ``path``) has every field of a training
    state, of its type, and no other; the weights file it names is a plain name beside it."""
    _fields(path, "", meta, RECORD)
    _fields(path, "loop.", meta["loop"], LOOP)
    _fields(path, "optimizer.", meta["optimizer"], OPTIMIZER)
    _fields(path, "rng.", meta["rng"], RNG)
    weights = meta["weights"]
    if Path(weights).name != weights or not weights.endswith(".safetensors") or weights != path.stem + ".safetensors":
        raise UsageError(f"training state {path} is damaged: field weights must name {path.stem}.safetensors "
                         f"beside it, got {weights!r}")


# -- the optimizer against the run's configuration --------------------------------------------------
HYPER = ("momentum", "nesterov", "weight_decay", "betas", "eps", "dampening", "amsgrad", "maximize")
"""Hyperparameters compared between a saved group and a fresh one (``lr`` follows the schedule each step)."""


def _kind(group: dict[str, Any]) -> str:
    return "adamw" if "betas" in group else "sgd" if "momentum" in group else "unknown"


def _same(a: Any, b: Any) -> bool:
    norm = (lambda v: list(v) if isinstance(v, (tuple, list)) else v)
    return norm(a) == norm(b)


def check_optimizer_fits(path: Path, saved: dict[str, Any], tensors: dict[str, torch.Tensor],
                         optimizer: torch.optim.Optimizer) -> None:
    """The saved optimizer (``saved`` = the record's ``optimizer``, ``tensors`` its ``optim.*`` tensors) is the
    kind the configuration builds, with the same hyperparameters, groups and per-parameter state shapes."""
    fresh = optimizer.param_groups
    groups = saved["param_groups"]
    bad = f"cannot resume from {path}"
    if len(groups) != len(fresh) or any(len(g["params"]) != len(f["params"]) for g, f in zip(groups, fresh)):
        raise UsageError(f"{bad}: its optimizer has {[len(g['params']) for g in groups]} parameters per group, "
                         f"the run's model {[len(f['params']) for f in fresh]}")
    for i, (g, f) in enumerate(zip(groups, fresh)):
        if _kind(g) != _kind(f):
            raise UsageError(f"{bad}: its optimizer state is {_kind(g)}, the configuration builds {_kind(f)} "
                             "(optim.name cannot change on resume)")
        missing = [k for k in ("lr", *HYPER) if k in f and k not in g]
        if missing or not is_real(g.get("lr")):
            what = f"missing field {missing[0]}" if missing else "field lr must be a number"
            raise UsageError(f"training state {path} is damaged: optimizer.param_groups[{i}]: {what}")
        for key in HYPER:
            if key in f and key in g and not _same(g[key], f[key]):
                raise UsageError(f"{bad}: its optimizer has {key}={g[key]!r}, the configuration {f[key]!r} "
                                 f"(optim settings cannot change on resume)")
    shapes = {i: tuple(p.shape) for i, p in enumerate(q for f in fresh for q in f["params"])}
    for key, t in tensors.items():
        _, pid, name = key.split(".", 2)
        if not pid.isdigit() or int(pid) not in shapes:
            raise UsageError(f"{bad}: optimizer tensor {key} names no parameter of the model")
        if t.dim() > 0 and tuple(t.shape) != shapes[int(pid)]:
            raise UsageError(f"{bad}: optimizer tensor {key} has shape {tuple(t.shape)}, its parameter "
                             f"{shapes[int(pid)]}")

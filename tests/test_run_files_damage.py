"""Damaged files of our own, read back through the real CLI.

- Append-only logs (steps.jsonl; metrics.jsonl) are read tolerantly on `--resume`: a damaged line in the middle
  is reported (a warning the CLI shows) and skipped, and every good row after it is kept.
- JSON we read back (the training state's record, a model directory's config.json, lambda_fit.json): an unknown
  field, a missing field or a field of the wrong type is one clear line, exit 2 (no raw TypeError/KeyError), and
  a refused resume writes nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_helpers import run_cli
from train_helpers import tiny_cli_run
from sdnet_cli.engine.state import find_state

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch run of 4 steps on digits 8x8."""
    return tiny_cli_run(tmp_path_factory.mktemp("damage_base") / "run", steps=4)


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


# -- append-only logs -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [b'{"step": 2, "epoch": 1, "loss": 0.\n', b"\x00\xff\xfe garbage\n", b"[1, 2]\n",
                                 b'{"epoch": 1, "loss": 1.0}\n'], ids=["truncated", "binary", "not-object", "no-step"])
def test_damaged_step_line_is_reported_and_skipped_never_dropping_later_rows(run: Path, capsys, bad: bytes) -> None:
    rows = lines(run / "steps.jsonl")
    assert [json.loads(r)["step"] for r in rows] == [1, 2, 3, 4]
    damaged = rows[:1] + [bad] + rows[2:]  # step 2's line damaged; 3 and 4 after it are good
    (run / "steps.jsonl").write_bytes(b"".join(damaged))
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 0, err
    warning = [line for line in error_lines(err) if line.startswith("warning:")]
    assert len(warning) == 1 and "steps.jsonl: skipped 1 damaged line(s) (steps.jsonl line 2" in warning[0], err
    steps = [json.loads(r)["step"] for r in lines(run / "steps.jsonl")]
    assert steps == [1, 3, 4, 5, 6, 7, 8]  # before: [1] (every good row after the damage dropped, silently)


def test_unfinished_last_step_line_of_a_killed_run_is_dropped_quietly(run: Path, capsys) -> None:
    data = (run / "steps.jsonl").read_bytes()
    (run / "steps.jsonl").write_bytes(data + b'{"step": 5, "epo')  # killed mid-line: no newline
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 0, err
    assert "warning" not in err
    assert [json.loads(r)["step"] for r in lines(run / "steps.jsonl")] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_damaged_metrics_line_loses_no_epoch(run: Path, capsys) -> None:
    """metrics.jsonl is never parsed on resume: it is rewritten whole from the state's per-epoch history."""
    (run / "metrics.jsonl").write_bytes(b"not json\n" + (run / "metrics.jsonl").read_bytes())
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 0, err
    assert [json.loads(r)["epoch"] for r in lines(run / "metrics.jsonl")] == [1, 2]


# -- the training state's JSON record -------------------------------------------------------------
def _put(path: str, value):
    def edit(meta: dict) -> None:
        *parents, last = path.split(".")
        obj = meta
        for p in parents:
            obj = obj[p]
        obj[last] = value
    return edit


def _drop(path: str):
    def edit(meta: dict) -> None:
        *parents, last = path.split(".")
        obj = meta
        for p in parents:
            obj = obj[p]
        del obj[last]
    return edit


STATE_DAMAGE = [
    ("unknown-top", _put("surprise", 1), "unknown field surprise"),
    ("unknown-loop", _put("loop.phase", 2), "unknown field loop.phase"),
    ("unknown-optimizer", _put("optimizer.extra", {}), "unknown field optimizer.extra"),
    ("missing-loop-epoch", _drop("loop.epoch"), "missing field loop.epoch"),
    ("missing-rng", _drop("rng"), "missing field rng"),
    ("missing-extra", _drop("extra"), "missing field extra"),
    ("missing-group-lr", lambda m: m["optimizer"]["param_groups"][0].pop("lr"), "missing field lr"),
    ("type-loop-epoch", _put("loop.epoch", "1"), "field loop.epoch must be an integer >= 0, got str"),
    ("type-loop-negative", _put("loop.global_step", -3), "field loop.global_step must be an integer >= 0"),
    ("type-history", _put("loop.history", {"epoch": 1}), "field loop.history must be a list of objects"),
    ("type-meter", _put("loop.meter", {"loss": "x"}), "field loop.meter must be an object of numbers"),
    ("type-groups", _put("optimizer.param_groups", {}), "field optimizer.param_groups must be a list"),
    ("type-rng-python", _put("rng.python", [3, [1, 2], None]), "field rng.python must be"),
    ("type-rng-numpy", _put("rng.numpy", ["PCG64", 0, 0, 0.0]), "field rng.numpy must be"),
    ("type-extra-config", _put("extra.config", {"train": {"epochs": "many"}}), "extra.config"),
    ("type-weights-path", _put("weights", "../../elsewhere.safetensors"),  # never followed out of state/
     "state/elsewhere.safetensors is missing or not a safetensors file"),
    ("type-weights", _put("weights", 5), "is not a training state record (no weights/token)"),
]


@pytest.mark.parametrize("edit,said", [(e, s) for _, e, s in STATE_DAMAGE], ids=[i for i, _, _ in STATE_DAMAGE])
def test_damaged_state_record_is_one_line_exit_2_and_nothing_is_written(run: Path, capsys, edit, said) -> None:
    meta, weights = find_state(run / "state")
    edit(meta)
    weights.with_suffix(".json").write_text(json.dumps(meta))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 2, err
    assert len(error_lines(err)) == 1 and said in err, err
    assert "TypeError" not in err and "KeyError" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_state_record_that_is_not_json_is_exit_2(run: Path, capsys) -> None:
    _, weights = find_state(run / "state")
    weights.with_suffix(".json").write_bytes(b"\x00garbage")
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 2 and "no complete training state" in err and "not readable JSON" in err, err


# -- a model directory's config.json and a lambda_fit.json -------------------------------------------
@pytest.mark.parametrize("edit,said", [
    (lambda c: c["model_args"].update(surprise=1), "model_args.surprise is not an argument"),
    (lambda c: c.pop("num_classes"), "lacks num_classes"),
    (lambda c: c.update(num_classes="10"), "num_classes must be an integer"),
    (lambda c: c["model_args"].update(lmbd="x"), "model_args.lmbd must be a finite number"),
], ids=["unknown-arg", "missing", "wrong-type", "wrong-type-arg"])
def test_damaged_model_config_json_is_exit_2(run: Path, capsys, edit, said) -> None:
    cfg = json.loads((run / "best" / "config.json").read_text())
    edit(cfg)
    (run / "best" / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli(capsys, "eval", run / "best")
    assert code == 2 and len(error_lines(err)) == 1 and said in err, err


FIT = {"format": "sdnet-lambda-fit", "slope": 0.1, "intercept": 0.1, "probe_lmbd": 0.1, "lmbd_min": 0.0,
       "lmbd_max": 1.0, "layers": "first", "points": [], "calibration": {}, "quality": {}, "fallback": None}


@pytest.mark.parametrize("edit,said", [
    (lambda f: f.update(surprise=1), "unexpected keyword argument 'surprise'"),
    (lambda f: f.pop("slope"), "missing 1 required positional argument: 'slope'"),
    (lambda f: f.update(slope="x"), "could not convert string to float"),
    (lambda f: f.update(quality=[1]), "calibration and quality must be objects"),
    (lambda f: f.update(points="abc"), "points must be a list"),
    (lambda f: f.update(fallback=3), "fallback a string or null"),
], ids=["unknown", "missing", "wrong-type-number", "wrong-type-quality", "wrong-type-points", "wrong-type-fallback"])
def test_damaged_lambda_fit_json_is_exit_2(run: Path, tmp_path: Path, capsys, edit, said) -> None:
    fit = dict(FIT)
    edit(fit)
    (tmp_path / "fit.json").write_text(json.dumps(fit))
    code, _, err = run_cli(capsys, "robust", run, "--lambda-fit", tmp_path / "fit.json", "--corruptions",
                           "gaussian_noise", "--severities", "5", "--max-images", "20", "--lambdas", "none",
                           "--no-plots", "--output", tmp_path / "r")
    assert code == 2 and said in err and "is not an sdnet lambda_fit.json" in err, err
    assert not (tmp_path / "r").exists()


# -- the run's config.yaml, read back on --resume -----------------------------------------------------
@pytest.mark.parametrize("edit,said", [
    (lambda c: c["train"].update(surprise=1), "unknown config key 'train.surprise'"),
    (lambda c: c["train"].update(epochs="many"), "train.epochs: expected an integer"),
    (lambda c: c["train"].pop("limit_batches"), "cannot change train.limit_batches on resume (4 -> 0)"),
], ids=["unknown", "wrong-type", "missing-differs"])
def test_damaged_config_yaml_is_exit_2_and_nothing_is_written(run: Path, capsys, edit, said) -> None:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    edit(cfg)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 2 and len(error_lines(err)) == 1 and said in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

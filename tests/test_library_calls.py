"""`sdnet eval` / `sdnet visualize` and the library calls behind them give the same results (no Typer involved)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sdnet_cli.engine.eval_model import EvalOptions, evaluate
from sdnet_cli.errors import UsageError
from sdnet_cli.viz import VisualizeOptions, run as visualize_run

from cli_helpers import run_cli

TIMING = ("seconds", "images_per_s", "wall_seconds")


def test_eval_cli_equals_library(digits_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "eval", str(digits_model_dir), "--lambda", "0.3", "--device", "cpu", "--json")
    assert code == 0, err
    cli = json.loads(out)
    lib = evaluate(EvalOptions(model=str(digits_model_dir), lmbd=0.3, device="cpu")).to_dict()
    for k in TIMING:
        cli.pop(k), lib.pop(k)
    assert cli == lib
    assert lib["lmbd"] == 0.3 and lib["images"] == 360 and len(lib["per_class"]) == 10


@pytest.mark.parametrize("kwargs,message", [
    ({"batch_size": 0}, "--batch-size must be an integer >= 1, got 0"),
    ({"lmbd": float("nan")}, "--lambda must be a finite number >= 0, got nan"),
    ({"lmbd": -0.1}, "--lambda must be a finite number >= 0, got -0.1"),
    ({"image_size": 0}, "--image-size must be an integer >= 1, got 0"),
    ({"image_size": -5}, "--image-size must be an integer >= 1, got -5"),
    ({"lmbd_layers": "some"}, "--lambda-layers must be 'first' or 'all', got 'some'"),
    ({"device": "tpu"}, "--device must be auto, cpu or cuda, got 'tpu'"),
    ({"dataset": "mnist"}, "unknown dataset 'mnist'; valid: digits, cifar10"),
    ({"workers": -1}, "--workers must be an integer >= 0, got -1"),
])
def test_eval_options_reject_bad_values_before_reading(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        EvalOptions(model=str(tmp_path / "missing"), **kwargs)  # the model path is not looked at yet


def test_visualize_cli_equals_library(digits_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--what", "sparsity,lambda", "--lambdas", "0,0.5", "-n", "4"]
    code, out, err = run_cli(capsys, "visualize", str(digits_model_dir), *args, "-o", str(tmp_path / "cli"), "--json")
    assert code == 0, err
    cli = json.loads(out)
    rep = visualize_run(VisualizeOptions(model=str(digits_model_dir), what=("sparsity", "lambda"), lmbds=(0.0, 0.5),
                                         num_images=4, output=tmp_path / "lib"))
    assert cli["sparsity"] == rep.summary["sparsity"] and cli["lambda"] == rep.summary["lambda"]
    assert sorted(cli["figures"]) == sorted(rep.figures)
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_visualize_replaces_only_its_own_output(digits_model_dir: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="holds other files"):
        VisualizeOptions(model=str(digits_model_dir), output=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = tmp_path / "viz"
    first = visualize_run(VisualizeOptions(model=str(digits_model_dir), what=("dictionary",), output=out))
    again = visualize_run(VisualizeOptions(model=str(digits_model_dir), what=("sparsity",), output=out))
    assert first.figures == ["dictionary.png"] and "sparsity.png" in again.figures
    assert not (out / "dictionary.png").exists()  # the folder was replaced as a whole, not merged

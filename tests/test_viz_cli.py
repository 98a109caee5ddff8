"""`sdnet visualize`: files written, figures non-blank, index.html, JSON numbers, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import sdnet_cli as sd
from sdnet_cli.models.files import ModelConfig, save_model

from cli_helpers import run_cli
from csc_helpers import quick_step_sizes

DIGITS = dict(dataset="digits", mean=[0.3054] * 3, std=[0.3185] * 3)
FAST = ["--num-images", "4", "--max-steps", "10", "--opt-steps", "30", "--lambdas", "0,0.1,1"]


def _save(root: Path, name: str, arch: str, **model_args) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(arch, 10, "cifar", model_args, **DIGITS)
    model = config.build()
    with torch.no_grad():  # non-trivial BN statistics so that inversion is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return save_model(quick_step_sizes(model).eval(), root / name / "best", config).parent


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("viz_models")
    return {
        "all": _save(root, "all", "sdnet18_all", shortcut=False),
        "sdnet18": _save(root, "sdnet18", "sdnet18"),
        "shortcut": _save(root, "shortcut", "sdnet18_all"),
        "resnet": _save(root, "resnet", "resnet18"),
    }


def assert_not_blank(path: Path) -> None:
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert img.shape[0] > 50 and img.shape[1] > 50, path
    assert img.std() > 1.0, f"{path} is blank"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10, f"{path} is nearly a single colour"


def test_visualize_writes_every_figure_and_index(models: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "viz"
    code, stdout, err = run_cli(capsys, "visualize", str(models["all"]), "--output", str(out), "--json", *FAST)
    assert code == 0, err
    summary = json.loads(stdout)
    expected = ["dictionary.png", "features_stack_minmax.png", "features_stack_histeq.png", "sparsity.png",
                "sparsity_hist.png", "convergence.png", "lambda.png", "lambda_decoded.png"]
    assert summary["figures"] == expected
    for name in expected:
        assert_not_blank(out / name)
    html = (out / "index.html").read_text()
    assert re.findall(r"<img src='([^']+)'", html) == expected
    assert html.count("<figcaption>") == len(expected)
    for data in ("dictionary.json", "features.json", "sparsity.json", "convergence.json", "lambda.json"):
        assert f"href='{data}'" in html and (out / data).is_file()
    # numbers in the JSON files
    n_csc = len(sd.csc_layers(sd.load_model(models["all"])))
    sparsity = json.loads((out / "sparsity.json").read_text())
    assert len(sparsity) == n_csc and all(0 <= r["nonzero_fraction"] <= 1 for r in sparsity)
    conv = json.loads((out / "convergence.json").read_text())
    assert all(len(r["objective"]) == 10 and r["optimum"] <= min(r["objective"]) for r in conv)
    lam = json.loads((out / "lambda.json").read_text())
    assert lam["lambdas"] == [0.0, 0.1, 1.0] and lam["rel_error"][0] < lam["rel_error"][-1]
    feats = json.loads((out / "features.json").read_text())
    assert feats["decode"] == "stack" and list(feats["relative_error"]) == [f"layer{i}" for i in range(5)]
    usage = json.loads((out / "dictionary.json").read_text())
    assert sorted(usage["order"]) == list(range(64))
    assert all(np.diff(np.array(usage["usage"])[usage["order"]]) <= 0)  # sorted by usage


def test_layer_decoding_for_sdnet18(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "viz"
    code, stdout, err = run_cli(capsys, "visualize", str(models["sdnet18"]), "--what", "features,dictionary", "-o", str(out),
                             "--json", *FAST)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["figures"] == ["dictionary.png", "features_layer_minmax.png", "features_layer_histeq.png"]
    for name in summary["figures"]:
        assert_not_blank(out / name)
    assert not (out / "convergence.png").exists()


@pytest.mark.parametrize("which", ["shortcut", "sdnet18"])
def test_stack_on_non_invertible_model_exits_2(which: str, models: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "viz"
    code, _, err = run_cli(capsys, "visualize", str(models[which]), "--what", "features", "--decode", "stack", "-o", str(out))
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) <= 3 and "shortcut=False" in err and "--decode layer" in err
    assert not out.exists()  # validated before writing anything


def test_resnet_is_refused(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "visualize", str(models["resnet"]), "-o", str(tmp_path / "v"))
    assert code == 2 and "no CSC layer" in err


def test_unknown_what_lists_valid_items(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "visualize", str(models["all"]), "--what", "dictionary,atoms", "-o", str(tmp_path / "v"))
    assert code == 2
    assert "atoms" in err and "dictionary, features, sparsity, convergence, lambda" in err


def test_unknown_layer_point_and_bad_lambdas(models: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "visualize", str(models["all"]), "--what", "features", "--layers", "layer7",
                        "-o", str(tmp_path / "v"))
    assert code == 2 and "unknown feature point 'layer7'" in err
    code, _, err = run_cli(capsys, "visualize", str(models["all"]), "--lambdas", "0.1,abc", "-o", str(tmp_path / "v"))
    assert code == 2 and "--lambdas" in err
    code, _, err = run_cli(capsys, "visualize", str(models["all"]), "--lambdas=-1,0.1", "-o", str(tmp_path / "v"))
    assert code == 2 and ">= 0" in err
    assert not (tmp_path / "v").exists()  # refused before anything was written


def test_missing_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "visualize", str(tmp_path / "nope" / "run"), "-o", str(tmp_path / "v"))
    assert code == 2 and err.strip()


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "visualize", "--help")
    assert code == 0 and "sdnet visualize" in out and "--what" in out and "--decode" in out


# -- acceptance on the trained digits models (conftest fixtures) ----------------------------------
ALL_FIGURES = {"dictionary.png", "sparsity.png", "sparsity_hist.png", "convergence.png", "lambda.png",
               "lambda_decoded.png"}


@pytest.mark.slow
@pytest.mark.parametrize("fixture,decode", [("digits_model_dir", "layer"),
                                            ("digits_all_noshortcut_model_dir", "stack")])
def test_acceptance_default_run_on_trained_digits_model(fixture: str, decode: str, request: pytest.FixtureRequest,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = request.getfixturevalue(fixture)
    out = tmp_path / "viz"
    code, stdout, err = run_cli(capsys, "visualize", str(model_dir), "--output", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["seconds"] <= 120
    figures = ALL_FIGURES | {f"features_{decode}_minmax.png", f"features_{decode}_histeq.png"}
    assert set(summary["figures"]) == figures
    for name in figures:
        assert_not_blank(out / name)
    html = (out / "index.html").read_text()
    assert set(re.findall(r"<img src='([^']+)'", html)) == figures
    # trained first layer: decoding is close to the input, and more so than with a large λ
    lam = json.loads((out / "lambda.json").read_text())
    i01 = lam["lambdas"].index(0.1)
    assert lam["rel_error"][0] < lam["rel_error"][i01] < lam["rel_error"][-1]
    assert lam["nonzero_fraction"][0] > lam["nonzero_fraction"][i01] > lam["nonzero_fraction"][-1]
    conv = json.loads((out / "convergence.json").read_text())
    assert all(r["gap_at_trained"] >= 0 and r["objective"][-1] <= r["objective"][1] for r in conv)

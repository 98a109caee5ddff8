"""Test-time λ evaluation, the per-sample λ fit, summaries, and `sdnet robust` end to end on digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sdnet_cli.cli.app import app
from sdnet_cli.data.corruptions import corrupt
from sdnet_cli.data.digits import load_digits
from sdnet_cli.layers import csc_layers, set_lmbd
from sdnet_cli.models.files import load_model_dir
from sdnet_cli.robust.conditions import condition_seed
from sdnet_cli.robust.accuracy import images_accuracy, lmbd_override
from sdnet_cli.robust.lmbd_fit import LmbdFit, fit_line
from sdnet_cli.robust.report import summarize

from csc_helpers import adjoint_decode

runner = CliRunner()


def trained_size(model_dir) -> int:
    """Image size the model was trained at (``metrics.image_size``; the session fixture trains at 16)."""
    return int(json.loads((Path(model_dir) / "config.json").read_text()).get("metrics", {}).get("image_size", 16))


def direct_accuracy(model, config, images: np.ndarray, labels: np.ndarray, lmbd: float) -> float:
    """Accuracy computed independently of sdnet_cli.robust: normalise, set λ, argmax."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(config.mean).view(1, 3, 1, 1)) / torch.tensor(config.std).view(1, 3, 1, 1)
    old = csc_layers(model)[0].lmbd
    set_lmbd(model, lmbd)
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    set_lmbd(model, old)
    return 100.0 * float((pred == labels).mean())


@pytest.fixture(scope="module")
def loaded(digits_model_dir):
    return load_model_dir(digits_model_dir)


def test_evaluate_matches_direct_and_restores_lambda(loaded, digits_model_dir) -> None:
    model, config = loaded
    x, y = load_digits("test", trained_size(digits_model_dir))
    x, y = x[:64], y[:64]
    for lm in (0.1, 0.7):
        res = images_accuracy(model, x, y, config.mean, config.std, lm, batch_size=24)
        assert res.accuracy == pytest.approx(direct_accuracy(model, config, x, y, lm))
        assert csc_layers(model)[0].lmbd == pytest.approx(0.1)
    # recon error = ‖x − Dz‖² of the first layer, computed directly
    layer = csc_layers(model)[0]
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0 - config.mean[0]) / config.std[0]
    with torch.no_grad():
        direct = (xt - adjoint_decode(layer, layer(xt), xt.shape)).pow(2).flatten(1).sum(1).numpy()
    res = images_accuracy(model, x, y, config.mean, config.std, None)
    np.testing.assert_allclose(res.recon, direct, rtol=1e-4)
    # larger λ → sparser code → larger reconstruction error
    assert images_accuracy(model, x, y, config.mean, config.std, 1.0).recon_error > res.recon_error


def test_per_sample_lambda_equals_scalar_runs(loaded, digits_model_dir) -> None:
    model, config = loaded
    x, y = load_digits("test", trained_size(digits_model_dir))
    x, y = x[:6], y[:6]
    lam = np.array([0.1, 1.2, 0.1, 1.2, 0.5, 0.5])
    per = images_accuracy(model, x, y, config.mean, config.std, lam)
    for v in (0.1, 0.5, 1.2):
        idx = np.flatnonzero(lam == v)
        one = images_accuracy(model, x[idx], y[idx], config.mean, config.std, v)
        np.testing.assert_allclose(per.loss[idx], one.loss, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(per.recon[idx], one.recon, rtol=1e-4)


def test_lambda_override_restores_all_layers(loaded) -> None:
    model, _ = loaded
    with lmbd_override(model, 0.9, "all"):
        assert all(layer.lmbd == 0.9 for layer in csc_layers(model))
    assert all(layer.lmbd == pytest.approx(0.1) for layer in csc_layers(model))


def test_fit_line_and_file(tmp_path: Path) -> None:
    r = np.array([1.0, 2.0, 3.0, 4.0])
    slope, intercept = fit_line(r, 0.3 * r + 0.05)
    assert slope == pytest.approx(0.3) and intercept == pytest.approx(0.05)
    assert fit_line([2.0, 2.0], [0.1, 0.3]) == (0.0, pytest.approx(0.2))
    fit = LmbdFit(slope, intercept, 0.1, 0.1, 1.0, points=[{"recon_error": 1.0, "best_lambda": 0.35}])
    np.testing.assert_allclose(fit.predict(np.array([0.0, 2.0, 10.0])), [0.1, 0.65, 1.0])
    loaded = LmbdFit.load(fit.save(tmp_path / "lambda_fit.json"))
    assert loaded == fit
    (tmp_path / "bad.json").write_text('{"slope": 1}')
    with pytest.raises(ValueError, match="not an sdnet lambda_fit.json"):
        LmbdFit.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        LmbdFit.load(tmp_path / "missing.json")


def test_summary_means() -> None:
    rows = []
    acc = {}
    for c_i, name in enumerate(("gaussian_noise", "fog", "speckle_noise")):
        for s in range(1, 6 if name != "fog" else 3):
            for lm, a in ((0.1, 50.0 + c_i + s), (0.5, 60.0 - s)):
                rows.append({"corruption": name, "severity": s, "lambda": lm, "accuracy": a, "recon_error": 1.0,
                             "mode": "sweep", "n": 10})
            rows.append({**rows[-2], "mode": "train"})
            acc[(name, s)] = (50.0 + c_i + s, max(50.0 + c_i + s, 60.0 - s))
    s = summarize(rows)
    bench = [(k, v) for k, v in acc.items() if k[0] != "speckle_noise"]
    assert s["means"]["train"]["robustbench"] == pytest.approx(np.mean([v[0] for _, v in bench]))
    per = {n: np.mean([v[0] for k, v in bench if k[0] == n]) for n in ("gaussian_noise", "fog")}
    assert s["means"]["train"]["augmix"] == pytest.approx(np.mean(list(per.values())))
    assert s["means"]["train"]["mean"] == pytest.approx(np.mean([v[0] for v in acc.values()]))
    assert s["means"]["best"]["mean"] == pytest.approx(np.mean([v[1] for v in acc.values()]))
    assert s["means"]["train"]["complete"] is False
    cond = {(c["corruption"], c["severity"]): c for c in s["per_condition"]}
    assert cond[("fog", 1)]["best_lambda"] == 0.5 and cond[("fog", 1)]["acc_best"] == 59.0


@pytest.mark.slow
def test_cli_generated_noise_end_to_end(digits_model_dir, tmp_path: Path) -> None:
    out = tmp_path / "rob"
    args = ["robust", str(digits_model_dir), "--corruptions", "impulse_noise", "--severities", "5",
            "--lambdas", "0.1,0.6", "--auto-lambda", "--max-images", "60", "--calib-images", "24",
            "--image-size", str(trained_size(digits_model_dir)), "--output", str(out), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    saved = json.loads((out / "results.json").read_text())
    assert {k: v for k, v in report.items() if k != "files"} == saved
    for f in ("results.json", "results.csv", "lambda_fit.json", "accuracy_vs_severity.png", "accuracy_vs_lambda.png",
              "lambda_fit.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert (out / "accuracy_vs_lambda.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["training_lambda"] == pytest.approx(0.1)
    modes = {(r["corruption"], r["mode"], r["lambda"]) for r in report["results"] if r["mode"] != "auto"}
    assert ("impulse_noise", "train", 0.1) in modes and ("impulse_noise", "sweep", 0.6) in modes
    assert {r["mode"] for r in report["results"]} == {"sweep", "train", "auto"}
    # the accuracy at the training λ equals a direct computation on the same generated images
    model, config = load_model_dir(digits_model_dir)
    x, y = load_digits("test", trained_size(digits_model_dir))
    idx = np.sort(np.random.default_rng(0).choice(len(y), 60, replace=False))
    images = corrupt(x[idx], "impulse_noise", 5, condition_seed(0, "impulse_noise", 5))
    row = next(r for r in report["results"] if r["corruption"] == "impulse_noise" and r["mode"] == "train")
    assert row["accuracy"] == pytest.approx(direct_accuracy(model, config, images, y[idx], 0.1))
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("model,corruption,severity") and len(csv_lines) == 1 + len(report["results"])
    # the saved fit is reused and gives the same per-sample λ results
    args2 = [a for a in args if a not in ("--calib-images", "24")]
    args2[args2.index("--output") + 1] = str(tmp_path / "rob2")
    res2 = runner.invoke(app, args2 + ["--lambda-fit", str(out / "lambda_fit.json"), "--no-plots"])
    assert res2.exit_code == 0, res2.output
    rep2 = json.loads(res2.stdout.strip().splitlines()[-1])
    auto = lambda rep: [(r["corruption"], r["accuracy"], r["lambda"]) for r in rep["results"] if r["mode"] == "auto"]  # noqa: E731
    assert auto(rep2) == auto(report)


def test_cli_compares_models(digits_model_dir, digits_narrow_model_dir, tmp_path: Path) -> None:
    """Two different models side by side: each comparison row is that model's own single-model result."""
    models = [digits_model_dir, digits_narrow_model_dir]
    common = ["--corruptions", "contrast,gaussian_noise", "--severities", "3,5", "--lambdas", "none",
              "--max-images", "60", "--no-plots", "--image-size", str(trained_size(digits_model_dir))]
    res = runner.invoke(app, ["robust", *map(str, models), "--output", str(tmp_path / "both"), *common])
    assert res.exit_code == 0, res.output
    comp = json.loads((tmp_path / "both" / "comparison.json").read_text())
    assert len(comp["models"]) == 2 and comp["models"][0]["model"] != comp["models"][1]["model"]
    own = []
    for i, m in enumerate(models):
        res = runner.invoke(app, ["robust", str(m), "--output", str(tmp_path / f"one{i}"), *common])
        assert res.exit_code == 0, res.output
        own.append(json.loads((tmp_path / f"one{i}" / "results.json").read_text())["summary"])
    fingerprints = [(s["clean"], s["means"]["train"]["per_corruption"]) for s in own]
    assert fingerprints[0] != fingerprints[1], "the two models must give different results for this test to see a swap"
    for row, s in zip(comp["models"], own):
        assert row["clean"] == s["clean"]
        assert row["mean"]["train"] == s["means"]["train"]["mean"]
        assert row["per_corruption"]["train"] == s["means"]["train"]["per_corruption"]
    assert (tmp_path / "both" / "comparison.csv").is_file()


@pytest.mark.parametrize("args,message", [
    (["--corruptions", "gausian_noise"], "valid:"),
    (["--severities", "6"], "levels 1-5"),
    (["--severities", "0"], "levels 1-5"),
    (["--lambdas", "a:b"], "--lambdas"),
    (["--attack", "fgsm2"], "pgd-linf"),
    (["--lambdas", "nan"], "--lambdas"),
    (["--lambdas", "0.1,inf"], "--lambdas"),
    (["--eps", "nan"], "--eps"),
    (["--eps", "-1/255"], "--eps"),
    (["--step-size", "nan"], "--step-size"),
    (["--recalibrate-bn", "-1"], "--recalibrate-bn"),
    (["--protocol", "sdnet-noise", "--severities", "10"], "speckle_noise has levels 1-6"),
    (["--protocol", "sdnet-noise", "--corruptions", "fog"], "sdnet-noise"),
])
def test_cli_bad_input_exit_2(digits_model_dir, capsys, tmp_path: Path, args: list[str], message: str) -> None:
    from sdnet_cli.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["robust", str(digits_model_dir), "-o", str(tmp_path / "out"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == [], "nothing may be written before validation passes"


def _strip(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("files", "seconds")}


@pytest.mark.slow
def test_library_call_equals_cli_and_table_fits_80_columns(digits_model_dir, tmp_path: Path) -> None:
    """robust.run(RobustOptions) (no Typer) gives what `sdnet robust --json` prints; the table fits 80 columns."""
    from rich.console import Console

    from sdnet_cli.cli.robust_tables import render
    from sdnet_cli.robust import RobustOptions, run

    size = trained_size(digits_model_dir)
    report = run(RobustOptions(models=(str(digits_model_dir),), corruptions="gaussian_noise", severities="4",
                               lmbds=(0.1, 0.6), auto_lmbd=True, calib_images=24, max_images=30, image_size=size,
                               output=tmp_path / "lib", plots=False))
    res = runner.invoke(app, ["robust", str(digits_model_dir), "--corruptions", "gaussian_noise", "--severities", "4",
                              "--lambdas", "0.1,0.6", "--auto-lambda", "--calib-images", "24", "--max-images", "30",
                              "--image-size", str(size), "--output", str(tmp_path / "cli"), "--no-plots", "--json"])
    assert res.exit_code == 0, res.output
    cli = json.loads(res.stdout.strip().splitlines()[-1])
    assert _strip(cli) == _strip(report.to_json())
    assert "lambda_fit" in cli and set(cli["lambda_fit"]["quality"]) >= {"r2", "rms_residual"}
    console = Console(width=80, record=True, color_system=None)
    render(report, console)
    text = console.export_text()
    assert "…" not in text and "λ₀" in text and "best" in text, text


def test_output_never_deletes_files_of_the_user(digits_model_dir, tmp_path: Path) -> None:
    """-o DIR holding files robust did not write: refused, nothing changed. An earlier robust output is replaced
    as a whole (a failed run leaves it as it was), and a file the user added to it is carried over."""
    from sdnet_cli.errors import UsageError
    from sdnet_cli.robust import RobustOptions, run

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("notes of the user")
    opts = RobustOptions(models=(str(digits_model_dir),), corruptions="contrast", severities="5", lmbds=(),
                         max_images=10, image_size=trained_size(digits_model_dir), output=out, plots=False)
    with pytest.raises(UsageError, match="holds other files .old.txt. that sdnet robust did not write"):
        run(opts)
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"] and (out / "old.txt").read_text() == "notes of the user"
    (out / "old.txt").unlink()
    run(opts)  # into the (now empty) folder
    first = (out / "results.json").read_bytes()
    (out / "old.txt").write_text("notes of the user")

    class Boom:
        def start(self, description: str, total: int) -> None:
            raise RuntimeError("killed mid-run")

        def advance(self, n: int = 1) -> None:
            pass

    with pytest.raises(RuntimeError, match="killed mid-run"):
        run(opts, Boom())
    assert (out / "results.json").read_bytes() == first and (out / "old.txt").read_text() == "notes of the user"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name], "no staging folder left behind"
    run(opts)
    assert sorted(p.name for p in out.iterdir()) == [".sdnet-output.json", "old.txt", "results.csv", "results.json"]
    assert (out / "old.txt").read_text() == "notes of the user"

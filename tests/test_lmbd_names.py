"""λ is ``lmbd`` in Python and ``lambda`` on the command line: the old spellings still work, each warning once,
and the robust options and the visualize λ values are checked once per run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import sdnet_cli.robust as robust
import sdnet_cli.viz as viz
from sdnet_cli import deprecations
from sdnet_cli.models.files import ModelConfig, save_model
from sdnet_cli.robust import RobustOptions

from cli_helpers import run_cli
from csc_helpers import quick_step_sizes


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deprecations, "_warned", set())


def _deprecations(action) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    return [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained sdnet18 for digits (what is counted here does not depend on the weights)."""
    torch.manual_seed(0)
    config = ModelConfig("sdnet18", 10, "cifar", {}, dataset="digits", mean=[0.3054] * 3, std=[0.3185] * 3)
    root = tmp_path_factory.mktemp("lmbd_names")
    return save_model(quick_step_sizes(config.build()).eval(), root / "m" / "best", config).parent


@pytest.mark.parametrize("old, new", [("LambdaFit", "LmbdFit"), ("parse_lambdas", "parse_lmbds"),
                                      ("DEFAULT_LAMBDA_SPEC", "DEFAULT_LMBD_SPEC"),
                                      ("evaluate_images", "images_accuracy"), ("EvalResult", "AccuracyResult")])
def test_old_robust_name_warns_once_and_is_the_new_object(old: str, new: str) -> None:
    got: list[object] = []
    messages = _deprecations(lambda: got.extend([getattr(robust, old), getattr(robust, old)]))
    assert got[0] is got[1] is getattr(robust, new)
    assert messages == [f"sdnet_cli.robust.{old} is deprecated, use sdnet_cli.robust.{new}"]
    assert old not in robust.__all__ and new in robust.__all__


def test_robust_options_old_keywords_and_attributes_warn_once_each(tmp_path: Path) -> None:
    fit = tmp_path / "lambda_fit.json"
    new = RobustOptions(models=("m",), lmbds=(0.1, 0.5), auto_lmbd=True, lmbd_fit=fit)
    made: list[RobustOptions] = []
    messages = _deprecations(lambda: made.extend(
        RobustOptions(models=("m",), lambdas=(0.1, 0.5), auto_lambda=True, lambda_fit=fit) for _ in range(2)))
    assert made[0] == made[1] == new
    assert messages == [f"RobustOptions({o}=...) is deprecated, use RobustOptions({n}=...)"
                        for o, n in (("lambdas", "lmbds"), ("auto_lambda", "auto_lmbd"), ("lambda_fit", "lmbd_fit"))]
    read: list[object] = []
    messages = _deprecations(lambda: read.extend(
        [new.lambdas, new.auto_lambda, new.lambda_fit, new.wants_auto_lambda, new.lambdas]))
    assert read == [(0.1, 0.5), True, fit, True, (0.1, 0.5)]
    assert len(messages) == 4 and "RobustOptions.wants_auto_lambda is deprecated" in messages[3]
    with pytest.raises(TypeError, match="got both lambdas= and lmbds="):
        RobustOptions(models=("m",), lambdas=(0.1,), lmbds=(0.2,))


def test_figure_and_visualize_options_old_keywords(model_dir: Path, tmp_path: Path) -> None:
    messages = _deprecations(lambda: [viz.FigureOptions(lambdas=(0.0, 1.0), lambda_images=2) for _ in range(2)])
    assert messages == ["FigureOptions(lambdas=...) is deprecated, use FigureOptions(lmbds=...)",
                        "FigureOptions(lambda_images=...) is deprecated, use FigureOptions(lmbd_images=...)"]
    made: list[viz.VisualizeOptions] = []
    messages = _deprecations(lambda: made.append(
        viz.VisualizeOptions(model=str(model_dir), lambdas=(0.0, 0.5), output=tmp_path / "v")))
    assert messages == ["VisualizeOptions(lambdas=...) is deprecated, use VisualizeOptions(lmbds=...)"]
    assert made[0].lmbds == (0.0, 0.5) and made[0].drawing().lmbds == (0.0, 0.5)


def test_robust_options_are_checked_once_per_run(model_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sdnet_cli.robust.options as options

    counts = {"post_init": 0, "levels": 0}
    post_init, parse_levels = RobustOptions.__post_init__, options.parse_levels

    def counted_post_init(self: RobustOptions) -> None:
        counts["post_init"] += 1
        post_init(self)

    def counted_levels(*args, **kwargs):
        counts["levels"] += 1
        return parse_levels(*args, **kwargs)

    monkeypatch.setattr(RobustOptions, "__post_init__", counted_post_init)
    monkeypatch.setattr(options, "parse_levels", counted_levels)
    opts = RobustOptions(models=(str(model_dir),), corruptions="contrast", severities="5", lmbds=(0.1,),
                         max_images=10, output=tmp_path / "out", plots=False, device="auto")
    report = robust.run(opts)
    assert counts == {"post_init": 1, "levels": 1}
    assert {r["corruption"] for r in report.models[0]["results"]} == {"clean", "contrast"}


def test_visualize_lmbds_are_checked_once_per_run(model_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sdnet_cli.viz.lmbds as lmbds_module
    import sdnet_cli.viz.report as report_module

    calls: list[tuple[float, ...]] = []
    check = lmbds_module.check_lmbds

    def counted(values) -> None:
        calls.append(tuple(values))
        check(values)

    for module in (lmbds_module, report_module):
        monkeypatch.setattr(module, "check_lmbds", counted)
    opts = viz.VisualizeOptions(model=str(model_dir), what=("lambda",), lmbds=(0.0, 0.5), num_images=2,
                                output=tmp_path / "v")
    rep = viz.run(opts)
    assert calls == [(0.0, 0.5)]
    assert rep.summary["lambda"]["lambdas"] == [0.0, 0.5]
    with pytest.raises(ValueError, match="--lambdas must be finite numbers >= 0"):
        viz.FigureOptions(lmbds=(0.1, -1.0))
    assert viz.FigureOptions(what=["dictionary"], lmbds=()).lmbds == ()  # λ values matter only to the λ figure


def _capture(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[object]:
    """Replace the library call ``module.name`` by one that records its options and stops the command."""
    seen: list[object] = []

    def stop(opts, *args, **kwargs):
        seen.append(opts)
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, stop)
    return seen


def test_old_lmbd_layers_flag_of_robust_warns_once_and_works(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    seen = _capture(monkeypatch, robust, "run")
    args = ["robust", str(model_dir), "--lambdas", "none"]
    messages = _deprecations(lambda: [run_cli(capsys, *args, "--lmbd-layers", "all") for _ in range(2)])
    assert messages == ["--lmbd-layers is deprecated, use --lambda-layers"]
    run_cli(capsys, *args, "--lambda-layers", "all")
    run_cli(capsys, *args)
    assert [o.lmbd_layers for o in seen] == ["all", "all", "all", "first"]  # type: ignore[attr-defined]
    code, _, err = run_cli(capsys, *args, "--lmbd-layers", "all", "--lambda-layers", "first")
    assert code == 2 and "--lmbd-layers all and --lambda-layers first disagree" in err
    code, out, _ = run_cli(capsys, "robust", "--help")
    assert code == 0 and "--lambda-layers" in out and "--lmbd-layers" not in out


def test_old_lmbd_flags_of_eval_warn_once_and_work(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import sdnet_cli.cli.eval_cmd as eval_cmd

    seen = _capture(monkeypatch, eval_cmd, "evaluate")
    old = ["eval", str(model_dir), "--lmbd", "0.3", "--lmbd-layers", "all"]
    messages = _deprecations(lambda: [run_cli(capsys, *old) for _ in range(2)])
    assert messages == ["--lmbd is deprecated, use --lambda", "--lmbd-layers is deprecated, use --lambda-layers"]
    run_cli(capsys, "eval", str(model_dir), "--lambda", "0.3", "--lambda-layers", "all")
    assert [(o.lmbd, o.lmbd_layers) for o in seen] == [(0.3, "all")] * 3  # type: ignore[attr-defined]
    code, _, err = run_cli(capsys, "eval", str(model_dir), "--lambda-layers", "some")
    assert code == 2 and "--lambda-layers must be 'first' or 'all', got 'some'" in err
    code, out, _ = run_cli(capsys, "eval", "--help")
    assert code == 0 and "--lambda-layers" in out and "--lmbd" not in out

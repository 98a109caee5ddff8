"""Commands that take a run (eval, robust, visualize, export) default to the newest FINISHED run under ./runs and
say which; with none there, one line saying to train first or name a model (exit 2). `sdnet train && sdnet robust
--corruptions all --severities 5 --lambdas none` works as typed in a fresh folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli
from sdnet_cli.engine.rundir import is_finished, newest_run
from sdnet_cli.engine.state import find_state

TINY = ["--epochs", "1", "--batch-size", "16", "--set", "train.limit_batches=2", "--set", "train.threads=1",
        "--set", "train.tensorboard=false", "--set", "model.width=8", "--set", "train.eval_batch_size=512"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow  # two processes: a 2-step run, then 19 corruptions of the 360 test images (~20-40 s)
def test_train_then_robust_as_typed_in_a_fresh_folder(tmp_path: Path) -> None:
    line = " ".join(["sdnet", "train", *TINY, "&&", "sdnet", "robust", "--corruptions", "all", "--severities", "5",
                     "--lambdas", "none"])
    bindir = str(Path(sys.executable).parent)
    p = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**ENV, "PATH": bindir + os.pathsep + ENV.get("PATH", "")})
    assert p.returncode == 0, p.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert f"no model given: using the newest finished run {Path('runs') / run.name}" in p.stderr
    results = json.loads((tmp_path / "robust-results" / "results.json").read_text())
    conditions = {(r["corruption"], r["severity"]) for r in results["results"] if r["corruption"] != "clean"}
    assert len(conditions) == 19 and {s for _, s in conditions} == {5}


@pytest.mark.parametrize("command", [["eval"], ["robust"], ["visualize"], ["export", "--output", "x"]],
                         ids=["eval", "robust", "visualize", "export"])
def test_no_run_is_one_line_saying_train_first_or_name_a_model(tmp_path: Path, monkeypatch, capsys, command) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "unfinished").mkdir(parents=True)  # no config.yaml/state: not a run
    code, out, err = run_cli(capsys, *command)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no finished run under runs/"), err
    assert "sdnet train" in err and "name a model" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``work/runs`` with a finished 1-epoch run ``a``, an older finished copy ``old`` and a newer
    unfinished copy ``b`` (its state at the end of epoch 1 of 2)."""
    from sdnet_cli.cli.app import main

    work = tmp_path_factory.mktemp("default_run")
    a = work / "runs" / "a"
    try:
        main(["train", "--output", str(a), *TINY])
    except SystemExit as e:
        assert not e.code
    shutil.copytree(a, work / "runs" / "old")
    b = work / "runs" / "b"
    shutil.copytree(a, b)
    meta, weights = find_state(b / "state")
    meta["extra"]["config"]["train"]["epochs"] = 2
    weights.with_suffix(".json").write_text(json.dumps(meta))
    for age, name in ((300, "old"), (200, "a"), (100, "b")):
        t = (work / "runs" / name).stat().st_mtime - age
        os.utime(work / "runs" / name, (t, t))
    os.utime(b)  # newest
    return work


def test_finished_runs_are_told_apart(runs: Path) -> None:
    assert is_finished(runs / "runs" / "a") and is_finished(runs / "runs" / "old")
    assert not is_finished(runs / "runs" / "b")
    assert newest_run(runs / "runs") == runs / "runs" / "b"  # what --resume continues
    assert newest_run(runs / "runs", finished=True) == runs / "runs" / "a"


@pytest.mark.parametrize("command", [["eval", "--json"], ["visualize", "--what", "dictionary", "--output", "v"],
                                     ["export", "--output", "e"]], ids=["eval", "visualize", "export"])
def test_commands_take_the_newest_finished_run_and_say_so(runs: Path, monkeypatch, capsys, command) -> None:
    work = runs / command[0]
    shutil.copytree(runs / "runs", work / "runs", copy_function=shutil.copy2)
    for name in ("old", "a", "b"):
        st = (runs / "runs" / name).stat()
        os.utime(work / "runs" / name, (st.st_atime, st.st_mtime))
    monkeypatch.chdir(work)
    code, out, err = run_cli(capsys, *command)
    assert code == 0, err
    assert f"no model given: using the newest finished run {Path('runs') / 'a'}" in err
    if command[0] == "eval":
        assert json.loads(out)["model_dir"].endswith(str(Path("runs") / "a" / "best"))
    if command[0] == "export":
        exported = json.loads((work / "e" / "config.json").read_text())
        best = json.loads((work / "runs" / "a" / "best" / "config.json").read_text())
        assert exported["architecture"] == best["architecture"] and exported["metrics"]["top1"] == best["metrics"]["top1"]

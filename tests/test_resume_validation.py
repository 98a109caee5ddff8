"""`sdnet train --resume` validates the whole merged configuration (and the optimizer state against it) before it
writes anything: a change that would make the run inconsistent is one line, exit 2, naming the key; the run's
files stay byte for byte as they were and a later plain `--resume` still works. Safe keys (epochs, threads,
logging) may change. Driven through the real CLI on the bundled digits with tiny runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cli_helpers import run_cli
from train_helpers import tiny_cli_run
from sdnet_cli.engine.state import find_state

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch AdamW run (2 steps) on digits 8x8."""
    return tiny_cli_run(tmp_path_factory.mktemp("resume_base") / "run", steps=2)


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


REFUSED = [
    (["--set", "optim.name=sgd"], "optim.name"),  # the KeyError 'momentum'
    (["--set", "data.image_size=16"], "data.image_size"),  # applied silently mid-run before
    (["--lr", "0.1"], "optim.lr"),
    (["--set", "optim.weight_decay=0"], "optim.weight_decay"),
    (["--batch-size", "8"], "train.batch_size"),
    (["--model", "resnet18"], "model.name"),
    (["--set", "model.lmbd=0.3"], "model.lmbd"),
    (["--seed", "5"], "train.seed"),
    (["--set", "train.limit_batches=3"], "train.limit_batches"),
    (["--set", "data.augment=false"], "data.augment"),
    (["--set", "optim.schedule=constant"], "optim.schedule"),
]


@pytest.mark.parametrize("change,key", REFUSED, ids=[k for _, k in REFUSED])
def test_inconsistent_change_is_refused_before_anything_is_written(run: Path, capsys, change, key) -> None:
    before = snapshot(run)
    code, out, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2", *change)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot change " + key + " on resume"), err
    assert "Traceback" not in err and "KeyError" not in err
    assert snapshot(run) == before  # config.yaml, logs and state untouched
    assert not any(p.name.startswith(".") for p in run.parent.iterdir() if p != run)  # no lock file left either
    # the refused resume did not poison the run: a plain resume continues it
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 0, err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_safe_keys_may_change_and_are_recorded(run: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2", "--set",
                           "train.eval_batch_size=256", "--set", "train.checkpoint_every=1", "--workers", "0")
    assert code == 0, err
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["eval_batch_size"] == 256
    assert cfg["train"]["checkpoint_every"] == 1
    assert cfg["data"]["image_size"] == 8 and cfg["optim"]["name"] == "adamw"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    meta, _ = find_state(run / "state")
    assert meta["extra"]["config"] == cfg  # the state records what config.yaml says


def test_epochs_below_the_epochs_done_is_refused(run: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 0, err
    before = snapshot(run)
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "1")
    assert code == 2 and "train.epochs=1 is below the 2 epoch(s)" in err, err
    assert snapshot(run) == before


def test_config_yaml_rewritten_by_an_old_failed_resume_is_named_with_the_fix(run: Path, capsys) -> None:
    """A config.yaml that an older version rewrote (optim.name: sgd over an AdamW state): a plain resume names
    the key and the value to set it back to; with it the run continues and config.yaml is consistent again."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["optim"]["name"] = "sgd"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 2 and "cannot change optim.name on resume (adamw -> sgd)" in err, err
    assert "--set optim.name=adamw" in err
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2", "--set", "optim.name=adamw")
    assert code == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["name"] == "adamw"


def _edit_state(run: Path, edit) -> None:
    meta, weights = find_state(run / "state")
    edit(meta)
    weights.with_suffix(".json").write_text(json.dumps(meta))


@pytest.mark.parametrize("edit,said", [
    (lambda m: m["optimizer"]["param_groups"][0].update(momentum=0.9, nesterov=True, dampening=0.0) or
     m["optimizer"]["param_groups"][0].pop("betas"), "its optimizer state is sgd, the configuration builds adamw"),
    (lambda m: m["optimizer"]["param_groups"][0].update(weight_decay=0.5), "its optimizer has weight_decay=0.5"),
    (lambda m: m["optimizer"]["param_groups"].append(dict(m["optimizer"]["param_groups"][0], params=[])),
     "parameters per group"),
], ids=["kind", "hyperparameter", "groups"])
def test_optimizer_state_is_checked_against_the_configuration(run: Path, capsys, edit, said) -> None:
    _edit_state(run, edit)
    before = snapshot(run)
    code, _, err = run_cli(capsys, "train", "--resume", "--output", run, "--epochs", "2")
    assert code == 2 and said in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert snapshot(run) == before

"""The CLI shell: help, models table, and the error contract (one line, exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys


from typer.testing import CliRunner

from sdnet_cli.cli.app import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("train", "eval", "robust", "visualize", "export", "pull-weights", "models", "bench"):
        assert cmd in res.output


def test_models_json_matches_registry() -> None:
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)["models"]}
    assert set(rows) == {"resnet18", "resnet34", "sdnet18", "sdnet18_all", "sdnet34", "sdnet34_all"}
    assert rows["sdnet18"]["params_cifar10"] == 11_173_962 and rows["sdnet18"]["csc_layers"] == 1
    assert rows["sdnet18_all"]["csc_layers"] == 17


def test_models_table() -> None:
    proc = subprocess.run([sys.executable, "-m", "sdnet_cli", "models"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "sdnet18_all" in proc.stderr and "11,173,962" in proc.stderr


def test_user_error_is_one_line_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "sdnet_cli", "eval", "no/such/model/dir/anywhere"],
                          capture_output=True, text=True, timeout=120, env={**__import__("os").environ,
                                                                            "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error:")


def test_error_line_is_literal_and_single(tmp_path, capsys, monkeypatch) -> None:
    """A path with rich markup characters is printed as typed (escaped), and the error stays one line."""
    from sdnet_cli.cli.app import main

    monkeypatch.delenv("SDNET_DEBUG", raising=False)
    odd = tmp_path / "[red]odd[/red] name"
    capsys.readouterr()
    try:
        main(["eval", str(odd)])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert "[red]odd[/red] name" in lines[0], err


def test_help_through_main_exits_0(capsys) -> None:
    from sdnet_cli.cli.app import main

    for argv in (["--help"], ["train", "--help"], ["eval", "-h"]):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code or 0
        assert code == 0, argv
        assert "Usage" in capsys.readouterr().out

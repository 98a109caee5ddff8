"""What the CLI prints, whatever the user typed: help texts as written (no ``[...]`` eaten by rich), paths with
markup characters printed as they are, ``--json`` failures as ``{"error", "exit_code"}`` for every command,
Ctrl-C at any moment of start-up one line and exit code 130, and errors one line (no blank line before)."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli
from hub_server import make_model_dir

ROOT = Path(__file__).parents[1]
CLI = ROOT / "sdnet_cli" / "cli"
COMMANDS = ("train", "eval", "robust", "visualize", "export", "pull-weights", "models", "bench")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("render") / "m")[0]


def _source_help_texts(path: Path) -> list[str]:
    """The literal text of every ``help=`` string (f-string pieces included) and command docstring in ``path``."""
    texts: list[str] = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_command") and ast.get_docstring(node):
            texts.append(ast.get_docstring(node) or "")
        if isinstance(node, ast.keyword) and node.arg == "help":
            values = node.value.values if isinstance(node.value, ast.JoinedStr) else [node.value]
            texts += [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return texts


def _flat(text: str) -> str:
    """Rendered help without rich's box characters and line wrapping."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", text))


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_bracket_text_of_the_source(command, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("TERMINAL_WIDTH", "400")
    source = CLI / f"{command.replace('-', '_')}_cmd.py"
    brackets = {b for t in _source_help_texts(source) for b in re.findall(r"\[[^\[\]\n]*\]", t)}
    code, out, err = run_cli(capsys, command, "--help")
    assert code == 0, err
    shown = _flat(out)
    missing = [b for b in sorted(brackets) if _flat(b).strip() not in shown]
    assert not missing, f"sdnet {command} --help lost {missing}"
    if command == "robust":
        assert 'pip install "sdnet[attacks]"' in shown


@pytest.mark.parametrize("name", ["r[/]x", "[bold]b", "a[red]c[/red]"])
def test_paths_with_markup_are_printed_as_written(name, model, tmp_path, capsys) -> None:
    out = tmp_path / name
    code, _, err = run_cli(capsys, "export", str(model), "--output", str(out))
    assert code == 0, err
    assert str(out) in _flat(err).replace(" ", "") or str(out) in err, err
    assert (out / "model.safetensors").is_file()
    code, _, err = run_cli(capsys, "visualize", str(model), "--what", "dictionary", "--num-images", "2",
                           "--output", str(tmp_path / f"v{name}"))
    assert code == 0 and f"v{name}" in err, err


def _json_failures(model: Path, tmp: Path) -> list[list[str]]:
    (tmp / "file").write_text("x")
    return [["train", "--epochs", "abc"], ["train", "--output", str(tmp / "file"), "--epochs", "1"],
            ["eval", str(tmp / "missing")], ["robust", str(tmp / "missing"), "--corruptions", "contrast"],
            ["visualize", str(model), "--output", str(tmp / "file")], ["export", str(model), "--output", str(model)],
            ["pull-weights"], ["models", "--bogus"], ["bench", "--models", "nosuch"]]


def test_json_failure_is_an_error_object_for_every_command(model, tmp_path, capsys) -> None:
    cases = _json_failures(model, tmp_path)
    assert {c[0] for c in cases} == set(COMMANDS)
    for args in cases:
        code, out, err = run_cli(capsys, *args, "--json")
        assert code in (1, 2), (args, code, err)
        obj = json.loads(out)
        assert obj == {"error": obj["error"], "exit_code": code}, (args, out)
        assert err.strip() == f"error: {obj['error']}", (args, err)


def _interrupt_at(delay: float, args: list[str]) -> tuple[int, str]:
    """Run the CLI's ``main`` in a fresh interpreter; SIGINT ``delay`` s after it is called (the marker). Before
    that instant is the interpreter's own start-up and the import of the small entry module (milliseconds)."""
    code = "import sys; from sdnet_cli.cli.app import main; sys.stderr.write('go\\n'); sys.stderr.flush(); main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stderr.readline() == "go\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("delay", [0.01, 0.05, 0.2, 0.6, 1.2, 2.0])
def test_ctrl_c_during_start_up_is_one_line_and_130(delay, model) -> None:
    code, err = _interrupt_at(delay, ["eval", str(model), "--dataset", "digits"])
    assert (code, err) == (130, "error: interrupted\n"), (delay, code, err[-2000:])


def test_errors_inside_the_progress_display_are_one_line(model, tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(capsys, "robust", str(model), "--cifar-c-dir", str(tmp_path / "none"),
                           "--corruptions", "gaussian_noise", "--output", str(tmp_path / "out"))
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), repr(err)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    code, _, err = run_cli(capsys, "pull-weights", "nosuch/repo", "--timeout", "1", "--cache-dir", str(tmp_path / "c"))
    assert code in (1, 2) and len(err.splitlines()) == 1 and err.startswith("error: "), repr(err)

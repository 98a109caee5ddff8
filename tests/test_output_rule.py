"""The one output rule (outputs.check_output_dir / write_output), through the real CLI for every command that writes
a folder: a folder of the user's, the model being read or a folder holding it is refused with one line (exit 2)
and left byte for byte as it was; an earlier output of the same command is replaced and the files the user added
to it are carried over; a symlinked output is written through; a 240-character name works; the leftovers of a
SIGKILLed run under a name with glob characters are removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli
from hub_server import make_model_dir

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
DEAD_PID = 2**22 + 7  # above the kernel's pid_max: no process has it


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (``None`` for a folder)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def _ours(root: Path) -> list[str]:
    """Our temporaries anywhere under ``root``."""
    return [str(p) for p in root.rglob(".sdnet.*")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/`` holding two finished runs (their best/ model directories)."""
    root = tmp_path_factory.mktemp("rule") / "runs"
    for i, name in enumerate(("r1", "r2")):
        make_model_dir(root / name / "best", seed=i)
        (root / name / "config.yaml").write_text("# a run\n")
    return root


def _command(name: str, src: Path, out: Path) -> list[str]:
    return {
        "robust": ["robust", str(src), "--corruptions", "contrast", "--severities", "5", "--lambdas", "none",
                   "--max-images", "10", "--no-plots", "--output", str(out)],
        "visualize": ["visualize", str(src), "--what", "dictionary", "--num-images", "2", "--output", str(out)],
        "export": ["export", str(src), "--output", str(out)],
        "train": ["train", "--force", "--epochs", "1", "--output", str(out)],
    }[name]


@pytest.mark.parametrize("command", ["robust", "visualize", "export", "train"])
@pytest.mark.parametrize("case", ["notes", "model being read", "parent of runs"])
def test_a_folder_of_the_user_is_refused_and_left_as_it_was(command, case, runs, tmp_path, capsys) -> None:
    if case == "notes":
        out = tmp_path / "notes"
        (out / "sub").mkdir(parents=True)
        (out / "todo.txt").write_text("keep me")
        (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    elif case == "model being read":
        if command == "train":
            pytest.skip("train --force over a run replaces that run (its own earlier output)")
        out = runs / "r1"
    else:
        out = runs  # holds both finished runs, one of them the model being read
    root = out if case == "notes" else runs
    before = _snapshot(root)
    code, stdout, err = run_cli(capsys, *_command(command, runs / "r1", out))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: --output"), err
    reasons = ("holds other files",) if case == "notes" else ("this command reads", "holds other files")
    assert any(r in err for r in reasons), err
    assert _snapshot(root) == before and not _ours(root.parent)


def test_an_earlier_output_is_replaced_and_files_added_to_it_are_carried_over(runs, tmp_path, capsys) -> None:
    out = tmp_path / "viz"
    args = _command("visualize", runs / "r1", out)
    assert run_cli(capsys, *args)[0] == 0
    first = (out / "dictionary.png").read_bytes()
    (out / "notes.txt").write_text("mine")
    (out / "drafts").mkdir()
    (out / "drafts" / "a.md").write_text("draft")
    code, _, err = run_cli(capsys, *_command("visualize", runs / "r2", out))  # another model: other figures
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine" and (out / "drafts" / "a.md").read_text() == "draft"
    assert (out / "dictionary.png").read_bytes() != first
    assert sorted(p.name for p in out.iterdir()) == [".sdnet-output.json", "dictionary.json", "dictionary.png",
                                                     "drafts", "index.html", "notes.txt"]
    # the output of one command is not another's to replace
    code, _, err = run_cli(capsys, *_command("robust", runs / "r1", out))
    assert code == 2 and "is an output of sdnet visualize" in err, err
    assert not _ours(tmp_path)


def test_a_symlinked_output_is_written_through(runs, tmp_path, capsys) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    for _ in range(2):  # new, then replacing its earlier export
        code, _, err = run_cli(capsys, *_command("export", runs / "r1", link))
        assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in real.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # no temp link, no staging folder


def test_a_240_character_output_name_works(runs, tmp_path, capsys) -> None:
    out = tmp_path / ("x" * 240)
    for _ in range(2):
        code, _, err = run_cli(capsys, *_command("export", runs / "r1", out))
        assert code == 0, err
    assert (out / "model.safetensors").is_file() and sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def _kill_while_staging(args: list[str], parent: Path) -> bool:
    """Start ``python -m sdnet_cli ARGS`` and SIGKILL it while its staging folder exists in ``parent``."""
    proc = subprocess.Popen([sys.executable, "-m", "sdnet_cli", *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    prefix = f".sdnet.tmp-{proc.pid}-"
    while proc.poll() is None and not any(n.startswith(prefix) for n in os.listdir(parent)):
        time.sleep(0.0005)
    staged = any(n.startswith(prefix) for n in os.listdir(parent))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return staged and proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("name", ["vz[1]*?"])
def test_leftovers_of_a_killed_run_are_removed_whatever_the_name(name, runs, tmp_path, capsys) -> None:
    out = tmp_path / name
    legacy = tmp_path / f".{name}.tmp-{DEAD_PID}-deadbeef"  # an earlier version's staging folder
    legacy.mkdir()
    (legacy / "half").write_bytes(b"x")
    killed = any(_kill_while_staging(_command("visualize", runs / "r1", out), tmp_path) for _ in range(5))
    assert killed, "no kill landed while the staging folder existed"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".sdnet.tmp-")], "the killed run left its staging folder"
    code, _, err = run_cli(capsys, *_command("visualize", runs / "r1", out))
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == [name], sorted(os.listdir(tmp_path))


def test_a_switch_killed_between_the_two_renames_of_the_fallback_is_undone(tmp_path, monkeypatch) -> None:
    """Where the kernel has no atomic exchange, the switch is two renames; a process killed between them leaves
    the old folder as a backup, which the next run puts back under the (glob-character) name it had."""
    from sdnet_cli import fsio

    monkeypatch.setattr(fsio, "_exchange", lambda a, b: False)
    target = tmp_path / "out[1]"
    target.mkdir()
    (target / "a").write_text("old")
    staged = fsio.staging_dir(target)
    (staged / "a").write_text("new")
    fsio.replace_dir(staged, target)
    assert (target / "a").read_text() == "new" and os.listdir(tmp_path) == ["out[1]"]
    backup = tmp_path / f"{fsio.OLD_PREFIX}{DEAD_PID}-abcdef12"  # what a kill after the first rename leaves
    (tmp_path / f"{backup.name}.to").write_bytes(b"out[1]")
    target.rename(backup)
    fsio.clean_stale(target)
    assert os.listdir(tmp_path) == ["out[1]"] and (target / "a").read_text() == "new"

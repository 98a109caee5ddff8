"""Stage then switch, written once (fsio.Staged / staged_dir): the old folder is untouched until the switch, the
new one complete after it; every writer of a whole folder goes through it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from sdnet_cli import fsio
from sdnet_cli.engine.rundir import RunDirectory
from sdnet_cli.engine.state import LoopState, find_state, save_state
from sdnet_cli.errors import UsageError
from sdnet_cli.fsio import Staged, staged_dir
from sdnet_cli.models.files import ModelConfig, save_model
from sdnet_cli.outputs import MANIFEST, OutputLock, check_output_dir, write_output


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name → bytes), read independently of the code under test."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _old(tmp_path: Path) -> Path:
    target = tmp_path / "out"
    (target / "sub").mkdir(parents=True)
    (target / "a.txt").write_bytes(b"old a")
    (target / "sub" / "b.txt").write_bytes(b"old b")
    (target / "mine.txt").write_bytes(b"the user's")
    return target


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_writer_leaves_the_old_folder_intact(tmp_path, error) -> None:
    target = _old(tmp_path)
    before = _tree(target)
    with pytest.raises(type(error)):
        with staged_dir(target, ("a.txt", "sub")) as staged:
            (staged / "a.txt").write_bytes(b"half written")
            raise error
    assert _tree(target) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the staging folder is gone


def test_a_successful_writer_switches_in_the_complete_new_folder(tmp_path) -> None:
    target = _old(tmp_path)
    with staged_dir(target, ("a.txt", "sub")) as staged:
        assert staged.parent == tmp_path and staged.name.startswith(fsio.TMP_PREFIX)
        assert _tree(target)["a.txt"] == b"old a"  # nothing switched while writing
        (staged / "a.txt").write_bytes(b"new a")
        (staged / "c.txt").write_bytes(b"new c")
    # owned entries replaced (sub/ was owned and not rewritten: gone), the user's file carried over
    assert _tree(target) == {"a.txt": b"new a", "c.txt": b"new c", "mine.txt": b"the user's"}
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_without_owned_names_the_folder_is_replaced_whole_and_a_file_is_refused(tmp_path) -> None:
    target = _old(tmp_path)
    with staged_dir(target) as staged:
        (staged / "only.txt").write_bytes(b"x")
    assert _tree(target) == {"only.txt": b"x"}
    (tmp_path / "f").write_bytes(b"a file")
    with pytest.raises(UsageError, match="is a file"):
        Staged(tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == b"a file"


def test_a_staged_folder_can_be_discarded_without_touching_the_old_one(tmp_path) -> None:
    target = _old(tmp_path)
    before = _tree(target)
    staged = Staged(target)
    (staged.path / "a.txt").write_bytes(b"never")
    staged.discard()
    assert _tree(target) == before and sorted(os.listdir(tmp_path)) == ["out"]


@pytest.fixture
def commits(monkeypatch) -> list[Path]:
    """The targets of every Staged.commit call (the real commit still runs)."""
    calls: list[Path] = []
    real = fsio.Staged.commit

    def counting(self, *args, **kwargs):
        calls.append(Path(self.target))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(fsio.Staged, "commit", counting)
    return calls


def test_every_folder_writer_switches_through_staged_commit(tmp_path, commits) -> None:
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    save_state(tmp_path / "state", model, opt, LoopState(global_step=3))
    assert commits == [tmp_path / "state"] and find_state(tmp_path / "state")[0]["loop"]["global_step"] == 3

    save_model(model, tmp_path / "model", ModelConfig("resnet18", 3))
    assert commits[-1] == tmp_path / "model" and (tmp_path / "model" / "config.json").is_file()

    out = check_output_dir(tmp_path / "report", "visualize")
    assert write_output(out, lambda staged: (staged / "r.txt").write_bytes(b"r")) == 1
    assert commits[-1] == tmp_path / "report" and sorted(os.listdir(tmp_path / "report")) == [MANIFEST, "r.txt"]

    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "config.yaml").write_text("old: run\n")
    (run / "export").mkdir()  # not a run item: carried over
    with OutputLock(run) as lock:
        rd = RunDirectory.open(run, lock, resume=False, force=True)
        assert rd.staged and rd.path.parent == tmp_path
        (rd.path / "config.yaml").write_text("new: run\n")
        assert (run / "config.yaml").read_text() == "old: run\n"
        assert rd.commit() and not rd.commit()  # the second call has nothing to switch
    assert commits[-1] == run and len(commits) == 4
    assert (run / "config.yaml").read_text() == "new: run\n" and (run / "export").is_dir()
    assert not (run / "state").exists()


def test_a_failed_state_write_goes_through_the_same_discard(tmp_path, monkeypatch) -> None:
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    save_state(tmp_path / "state", model, opt, LoopState(global_step=1))
    discarded: list[Path] = []
    real = fsio.Staged.discard
    monkeypatch.setattr(fsio.Staged, "discard", lambda self: (discarded.append(Path(self.target)), real(self))[1])
    import sdnet_cli.engine.state as st

    def boom(*_a, **_k):
        raise OSError("disk died")

    monkeypatch.setattr(st, "atomic_write_json", boom)
    with pytest.raises(OSError, match="disk died"):
        save_state(tmp_path / "state", model, opt, LoopState(global_step=2))
    assert discarded == [tmp_path / "state"]
    assert find_state(tmp_path / "state")[0]["loop"]["global_step"] == 1
    assert sorted(os.listdir(tmp_path)) == ["state"]


def test_unpacking_an_archive_stages_through_the_same_primitive(tmp_path, monkeypatch) -> None:
    import io
    import tarfile

    from sdnet_cli.data.download import unpack_tar

    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("data/x.bin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    made: list[Path] = []
    real = fsio.Staged.__init__

    def counting(self, target):
        real(self, target)
        made.append(self.path)

    monkeypatch.setattr(fsio.Staged, "__init__", counting)
    root = tmp_path / "root"
    assert unpack_tar(archive, root, required=("data/x.bin",)) == [root / "data"]
    assert len(made) == 1 and made[0].parent == root and not made[0].exists()  # staged beside, then dropped
    assert _tree(root) == {"data/x.bin": b"abc"}

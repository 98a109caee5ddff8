"""The model zoo: entries, official accuracies, pins, and ``sdnet pull-weights --list``."""

from __future__ import annotations

import json

import pytest

from hub_server import run_cli
from sdnet_cli.hub import zoo

# The official SDNet README's "Pre-trained Models" table (top-1 %), as the issue lists it.
OFFICIAL = {
    "sdnet18-cifar10": 95.34, "sdnet18_all-cifar10": 95.02, "sdnet18_all-noshortcut-cifar10": 94.89,
    "sdnet18-cifar100": 78.45, "sdnet18_all-cifar100": 77.89, "sdnet18_all-noshortcut-cifar100": 77.28,
    "sdnet18-imagenet": 69.78, "sdnet18_all-imagenet": 69.68, "sdnet18_all-noshortcut-imagenet": 69.03,
}


def test_zoo_entries_match_the_official_table() -> None:
    entries = {e.name: e for e in zoo.list_entries()}
    assert {n: e.accuracy for n, e in entries.items()} == OFFICIAL
    for e in entries.values():
        assert not e.published and e.revision is None and e.sha256 is None  # nothing invented before publishing
        assert e.repo_id.endswith("/" + e.name) and e.filename == "model.safetensors"
        assert e.shortcut == ("noshortcut" not in e.name)
        assert (e.num_classes, e.stem_type) == {"cifar10": (10, "cifar"), "cifar100": (100, "cifar"),
                                           "imagenet": (1000, "imagenet")}[e.dataset]
    assert entries["sdnet18_all-noshortcut-imagenet"].model_args["shortcut"] is False
    assert "shortcut" not in entries["sdnet18-cifar10"].model_args  # only the *_all models take it
    assert "--no-shortcut" in entries["sdnet18_all-noshortcut-cifar100"].export_command()


# The official README's Google Drive folder per model (shared/reference/official_checkpoints.md).
DRIVE = {
    "sdnet18-cifar10": "1oZELeYgrNicKMtuO6RcZgafJMieixawy", "sdnet18_all-cifar10": "184YiNng89l2S1g-DPQD_gp8jb3vaTCLw",
    "sdnet18_all-noshortcut-cifar10": "1SaVLqGJak-EmaTGwU14juvwIBJn9baFJ",
    "sdnet18-cifar100": "1EMA-f-6PsxAvaObp1zXuivl-EDFW4MPc",
    "sdnet18_all-cifar100": "1XYtv8Oh4wgHhP_UAF2P0AZHG0fH6AQEc",
    "sdnet18_all-noshortcut-cifar100": "1Jx871n7JAFVCkly8JRCBqKeQAnCNI-rH",
    "sdnet18-imagenet": "1USIY9H3Aa4EV0K0T71gCe2VDSbyBIVO0", "sdnet18_all-imagenet": None,
    "sdnet18_all-noshortcut-imagenet": "1uKl1QrZyR4M0tNu7d0EF8awQtg2kMLa-",
}


def test_drive_folders_match_the_official_readme() -> None:
    entries = {e.name: e for e in zoo.list_entries()}
    assert {n: e.drive_folder for n, e in entries.items()} == DRIVE
    assert all(e.drive_sha256 is None for e in entries.values())  # pinned only from a real download
    assert {n: e.source for n, e in entries.items()} == {n: "drive" if f else "none" for n, f in DRIVE.items()}
    with pytest.raises(ValueError, match="drive_sha256 must be 64 hex"):
        zoo.ZooEntry(**{**entries["sdnet18-cifar10"].__dict__, "drive_sha256": "abc"})


def test_entry_builds_the_architecture_it_names() -> None:
    from sdnet_cli import create_model

    e = zoo.get_entry("sdnet18_all-noshortcut-cifar10")
    model = create_model(e.architecture, num_classes=e.num_classes, stem_type=e.stem_type, **e.model_args)
    assert all(block.shortcut is None for stage in (model.layer1, model.layer2) for block in stage)


def test_pins_are_validated() -> None:
    kw = dict(name="x", architecture="sdnet18", dataset="cifar10", num_classes=10, stem_type="cifar", shortcut=True,
              accuracy=1.0, repo_id="o/x")
    with pytest.raises(ValueError, match="pin both"):
        zoo.ZooEntry(**kw, revision="a" * 40)
    with pytest.raises(ValueError, match="40-hex commit"):
        zoo.ZooEntry(**kw, revision="main", sha256="b" * 64)
    with pytest.raises(ValueError, match="64 hex"):
        zoo.ZooEntry(**kw, revision="a" * 40, sha256="short")
    assert zoo.ZooEntry(**kw, revision="a" * 40, sha256="b" * 64).published


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(ValueError, match="Did you mean 'sdnet18_all-cifar100'"):
        zoo.get_entry("sdnet18-all-cifar100")
    assert zoo.find_entry("sdnet18_all", 100, "cifar", shortcut=False).name == "sdnet18_all-noshortcut-cifar100"
    assert zoo.find_entry("sdnet34", 10, "cifar") is None


def test_list_json_and_table(tmp_path, monkeypatch, capsys) -> None:
    rev, sha = "c" * 40, "d" * 64
    published = zoo.ZooEntry(name="sdnet18-test", architecture="sdnet18", dataset="cifar10", num_classes=10,
                             stem_type="cifar", shortcut=True, accuracy=50.0, repo_id="o/sdnet18-test", revision=rev,
                             sha256=sha, size=44_000_000)
    monkeypatch.setitem(zoo.ZOO, "sdnet18-test", published)
    code, out, err = run_cli(capsys, "pull-weights", "--list", "--json", "--cache-dir", tmp_path)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)["models"]}
    assert {n: rows[n]["accuracy"] for n in OFFICIAL} == OFFICIAL
    assert rows["sdnet18-cifar10"]["published"] is False and rows["sdnet18-cifar10"]["cached"] is False
    assert rows["sdnet18-cifar10"]["source"] == "drive" and rows["sdnet18-test"]["source"] == "hub"
    assert rows["sdnet18_all-imagenet"]["source"] == "none" and rows["sdnet18_all-imagenet"]["cached"] is None
    assert rows["sdnet18-cifar10"]["size"] is None
    # float32 params + BN running mean/var (4,800 channels in 20 BNs) + int64 counters + the stem's step size
    assert rows["sdnet18-cifar10"]["size_estimate"] == 4 * 11_173_962 + 4 * 2 * 4800 + 8 * 20 + 4 * 1

    assert rows["sdnet18-test"]["published"] is True and rows["sdnet18-test"]["cached"] is False
    snap = tmp_path / "models--o--sdnet18-test" / "snapshots" / rev  # the huggingface_hub cache layout
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")
    code, out, _ = run_cli(capsys, "pull-weights", "--list", "--json", "--cache-dir", tmp_path)
    assert {r["name"]: r for r in json.loads(out)["models"]}["sdnet18-test"]["cached"] is True
    code, out, err = run_cli(capsys, "pull-weights", "--list", "--cache-dir", tmp_path)
    assert code == 0 and out == ""
    assert "sdnet18_all-noshortcut-imagenet" in err and "69.03" in err and "42.0 MiB" in err
    sources = {ln.split()[1]: ln for ln in err.splitlines() if ln.startswith("│ sdnet18")}
    assert "official Drive" in sources["sdnet18-cifar10"] and "cached (Hub)" in sources["sdnet18-test"]
    assert "official" not in sources["sdnet18_all-imagenet"]  # the README links no folder for it


@pytest.mark.parametrize("args, expect", [([], "name a model"), (["sdnet18-cifar10", "--list"], "not both")])
def test_pull_weights_usage_errors(capsys, args, expect) -> None:
    code, out, err = run_cli(capsys, "pull-weights", *args)
    assert code == 2 and out == "" and expect in err and len(err.strip().splitlines()) == 1

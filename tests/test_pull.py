"""``sdnet pull-weights`` / ``hub.pull`` against a local Hub (tests/hub_server.py) with the real huggingface_hub client.

``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` are set with ``monkeypatch.setenv`` *after*
huggingface_hub was imported: ``hub.pull`` reads them at call time, which these tests also check.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from hub_server import FakeHub, make_model_dir, run_cli
from sdnet_cli import load_model
from sdnet_cli.hub import zoo
from sdnet_cli.hub import PullOptions, pull

REPO = "org/sdnet-test"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """Two model directories (different weights): ``(dir_v1, x, logits_v1, dir_v2, logits_v2)``."""
    root = tmp_path_factory.mktemp("hub_models")
    d1, x, y1 = make_model_dir(root / "v1", seed=0)
    d2, _, y2 = make_model_dir(root / "v2", seed=1)
    assert y1.std(0).min() > 0 and not torch.equal(y1, y2)  # logits depend on the input and on the weights
    return d1, x, y1, d2, y2


@pytest.fixture(scope="module")
def hub(exported):
    d1, _, _, d2, _ = exported
    server = FakeHub().start()
    server.v1 = server.add_folder(REPO, d1)
    server.v2 = server.add_folder(REPO, d2)  # main now points at v2
    server.dev = server.add_folder(REPO, d1, branch="dev")
    yield server
    server.stop()


@pytest.fixture()
def env(hub, tmp_path, monkeypatch):
    """The local Hub as endpoint and a fresh cache; returns the cache path."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub.requests.clear()
    hub.tampered.clear()
    return cache


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _logits(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(path)(x)


def _zoo_entry(hub: FakeHub, exported, sha256: str | None = None) -> zoo.ZooEntry:
    return zoo.ZooEntry(name="sdnet18-test", architecture="sdnet18", dataset="digits", num_classes=10, stem_type="cifar",
                        shortcut=True, accuracy=87.5, repo_id=REPO, revision=hub.v1,
                        sha256=sha256 or _sha(exported[0] / "model.safetensors"))


def test_pull_repo_gives_same_logits_and_verified_hash(hub, exported, env) -> None:
    _, x, _, d2, y2 = exported
    res = pull(PullOptions(REPO))
    assert res.revision == hub.v2 and res.repo_id == REPO
    assert Path(res.path) == env / "models--org--sdnet-test" / "snapshots" / hub.v2
    assert res.sha256 == _sha(d2 / "model.safetensors") == _sha(Path(res.path) / "model.safetensors")
    assert torch.equal(_logits(res.path, x), y2)
    assert hub.count("GET", "/lfs/") == 1  # the weights came from the CDN, through the 302


def test_pull_at_revision_and_branch(hub, exported, env) -> None:
    _, x, y1, _, _ = exported
    at_commit = pull(PullOptions(f"{REPO}@{hub.v1}"))
    assert at_commit.revision == hub.v1 and torch.equal(_logits(at_commit.path, x), y1)
    at_branch = pull(PullOptions(REPO, revision="dev"))
    assert at_branch.revision == hub.dev and torch.equal(_logits(at_branch.path, x), y1)


def test_second_pull_downloads_nothing(hub, env) -> None:
    first = pull(PullOptions(REPO))
    gets = hub.count("GET", "/resolve/") + hub.count("GET", "/lfs/")
    again = pull(PullOptions(REPO))
    assert again == first
    assert hub.count("GET", "/resolve/") + hub.count("GET", "/lfs/") == gets  # HEAD only, no download
    hub.requests.clear()
    pinned = pull(PullOptions(f"{REPO}@{first.revision}"))
    assert pinned.path == first.path and hub.requests == []  # a cached commit needs no request at all


def test_pull_zoo_name_cli_json_and_load_model(hub, exported, env, monkeypatch, capsys) -> None:
    d1, x, y1, _, _ = exported
    monkeypatch.setitem(zoo.ZOO, "sdnet18-test", _zoo_entry(hub, exported))
    code, out, err = run_cli(capsys, "pull-weights", "sdnet18-test", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert set(got) == {"name", "repo_id", "revision", "path", "sha256", "source", "original_sha256"}
    assert got["source"] == "hub" and got["original_sha256"] is None
    assert got["name"] == "sdnet18-test" and got["revision"] == hub.v1  # the pin, not main (v2)
    assert got["sha256"] == _sha(d1 / "model.safetensors")
    with torch.no_grad():
        assert torch.equal(load_model("sdnet18-test")(x), y1)  # same path as the CLI, warm cache
    code, out, _ = run_cli(capsys, "pull-weights", "sdnet18-test")
    assert code == 0 and out.strip() == got["path"]  # plain mode: the model directory on stdout


def test_tampered_download_is_refused_and_deleted(hub, exported, env, capsys) -> None:
    d2 = exported[3]
    data = bytearray((d2 / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF  # same size, other content
    hub.tamper(REPO, "model.safetensors", bytes(data))
    with pytest.raises(ValueError, match="failed verification"):
        pull(PullOptions(REPO))
    repo_dir = env / "models--org--sdnet-test"
    assert not list((repo_dir / "blobs").iterdir())  # the bad blob is gone
    assert not (repo_dir / "snapshots" / hub.v2 / "model.safetensors").exists()
    code, out, err = run_cli(capsys, "pull-weights", REPO)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "failed verification" in err
    hub.tampered.clear()
    assert pull(PullOptions(REPO)).sha256 == _sha(d2 / "model.safetensors")  # a clean retry works


def test_zoo_pin_mismatch_is_refused(hub, exported, env, monkeypatch) -> None:
    monkeypatch.setitem(zoo.ZOO, "sdnet18-test", _zoo_entry(hub, exported, sha256="0" * 64))
    with pytest.raises(ValueError, match="zoo's pinned sha256"):
        pull(PullOptions("sdnet18-test"))
    snap = env / "models--org--sdnet-test" / "snapshots" / hub.v1
    assert not (snap / "model.safetensors").exists()
    assert not list((env / "models--org--sdnet-test" / "blobs").iterdir())


def test_offline_warm_cache_works_cold_cache_says_what_to_do(hub, exported, env, monkeypatch, capsys, tmp_path) -> None:
    _, x, _, _, y2 = exported
    warm = pull(PullOptions(REPO))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    offline = pull(PullOptions(REPO))
    assert offline == warm and hub.requests == []
    assert torch.equal(_logits(REPO, x), y2)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cold"))
    code, out, err = run_cli(capsys, "pull-weights", REPO)
    assert code == 2 and hub.requests == []
    assert len(err.strip().splitlines()) == 1
    assert "HF_HUB_OFFLINE" in err and f"sdnet pull-weights {REPO}" in err


@pytest.mark.parametrize("arg, expect", [
    ("sdnet18-cifar1O", "did you mean 'sdnet18-cifar10'"),
    ("org/repo/extra", "malformed Hub repo"),
    ("org/bad--name", "malformed Hub repo id"),
    (f"{REPO}@no-such-branch", "revision 'no-such-branch' not found"),
    ("org/missing-repo", "not found on"),
    ("sdnet18_all-imagenet", "not published on the Hub yet"),
])
def test_bad_input_is_one_line_exit_2(hub, env, capsys, arg, expect) -> None:
    code, out, err = run_cli(capsys, "pull-weights", arg)
    assert code == 2, err
    assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expect.lower() in err.lower()


def test_env_read_at_call_time(hub, env, monkeypatch) -> None:
    import huggingface_hub.constants as c

    # what huggingface_hub froze at import time must not matter: the environment now wins
    # (an import freezes both the endpoint and the URL template built from it)
    monkeypatch.setattr(c, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(c, "HUGGINGFACE_CO_URL_TEMPLATE", "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    res = pull(PullOptions(REPO))
    assert res.path.startswith(str(env)) and hub.count("HEAD", f"/{REPO}/resolve/") == 2


def test_export_from_hub_repo(hub, exported, env, tmp_path, capsys) -> None:
    _, x, _, _, y2 = exported
    code, out, err = run_cli(capsys, "export", REPO, "--output", tmp_path / "re-export", "--json")
    assert code == 0, err
    assert json.loads(out)["files"] == ["model.safetensors", "config.json", "README.md"]
    assert torch.equal(_logits(tmp_path / "re-export", x), y2)


def test_library_call_equals_cli(hub, env, capsys) -> None:
    """``hub.pull(PullOptions)`` (no Typer) gives what ``sdnet pull-weights --json`` prints."""
    res = pull(PullOptions(REPO))
    code, out, err = run_cli(capsys, "pull-weights", REPO, "--json")
    assert code == 0, err
    assert json.loads(out) == res.to_dict() and res.revision == hub.v2


# -- content, not only the ETag (issue 23): an HTML page, NaN weights, a broken config.json ---------------
def _snapshot_files(cache: Path, repo: str) -> list[Path]:
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    return [p for p in repo_dir.glob("snapshots/*/*") if p.exists()] + list(repo_dir.glob("blobs/*"))


def test_html_page_with_non_sha_etag_is_refused(hub, exported, env, capsys) -> None:
    hub.fail("hub", "html")
    try:
        code, out, err = run_cli(capsys, "pull-weights", REPO)
    finally:
        hub.heal()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "failed the content check" in err and "HTML page" in err
    assert _snapshot_files(env, REPO) == []  # nothing usable (nor any blob) is left in the cache
    assert pull(PullOptions(REPO)).sha256 == _sha(exported[3] / "model.safetensors")  # a clean retry works


def _bad_copy(src: Path, dst: Path, what: str) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    if what == "nan":
        tensors = load_file(str(dst / "model.safetensors"))
        tensors["linear.weight"][0, 0] = float("nan")
        save_file(tensors, str(dst / "model.safetensors"))
    else:
        cfg = json.loads((dst / "config.json").read_text())
        cfg["num_classes"] = "ten"
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("what, expect", [("nan", "holds NaN values"), ("config", "num_classes must be an integer")])
def test_bad_content_under_valid_hashes_is_refused(hub, exported, env, tmp_path, capsys, what, expect) -> None:
    repo = f"org/bad-{what}"
    hub.add_folder(repo, _bad_copy(exported[0], tmp_path / what, what))
    code, out, err = run_cli(capsys, "pull-weights", repo)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "failed the content check" in err and expect in err
    assert _snapshot_files(env, repo) == []


@pytest.mark.parametrize("mutate, expect", [
    (lambda h: {**h, "w": {**h["w"], "dtype": "X9"}}, "no known dtype"),
    (lambda h: {**h, "w": {**h["w"], "data_offsets": [0, 4000]}}, "outside the file"),
    (lambda h: {**h, "w": {**h["w"], "shape": [3]}}, "wrong byte count"),
    (lambda h: [1, 2], "not an object"),
])
def test_safetensors_header_is_checked(tmp_path, mutate, expect) -> None:
    import struct

    from safetensors.torch import save

    from sdnet_cli.hub.verify import check_safetensors_header

    good = save({"w": torch.ones(2, 2)})
    path = tmp_path / "m.safetensors"
    path.write_bytes(good)
    assert set(check_safetensors_header(path, "m")) >= {"w"}
    n = struct.unpack("<Q", good[:8])[0]
    header = json.dumps(mutate(json.loads(good[8:8 + n]))).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + good[8 + n:])
    with pytest.raises(ValueError, match=expect):
        check_safetensors_header(path, "m")
    path.write_bytes(b"<!DOCTYPE html><html></html>")
    with pytest.raises(ValueError, match="an HTML page"):
        check_safetensors_header(path, "m")

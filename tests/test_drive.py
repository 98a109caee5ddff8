"""``sdnet pull-weights <zoo name>`` from the official Google Drive folder, against a local Drive stand-in.

The stand-in (tests/drive_server.py) speaks Drive's protocol: folder listing, ``/uc`` → usercontent, the
virus-scan confirmation form, the file with ``Range``; and its faults: rate-limit page, HTML error page,
HTML sent as a file, HTTP 500, a cut body (resumed, or cut every time), a stall. The checkpoint it serves
is built here in the official layout (tests/test_official.py: the official keys and shapes, ``module.``
prefix, wrapped in ``{"state_dict": …}``) and checked against an independent re-statement of the
official forward.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path

import pytest
import torch

from drive_server import FakeDrive
from hub_server import run_cli
from sdnet_cli.hub import PullOptions, pull, zoo
from sdnet_cli.models.files import load_model_dir
from test_official import LAYOUTS, fake_official_state, off_forward

NAME = "sdnet18-imagenet"
ENTRY = zoo.get_entry(NAME)
FOLDER = ENTRY.drive_folder
FILE_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"  # 33 characters, as Drive's ids


def _checkpoint(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({"epoch": 100, "arch": "sdnet18", "best_prec1": 69.78,
                "state_dict": {"module." + k: v for k, v in state.items()}}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def official():
    """``(checkpoint bytes, official state, x, logits of the official forward)`` of an ImageNet SDNet-18."""
    layout = LAYOUTS["sdnet18-imagenet-sc-1000"]
    state = fake_official_state(layout, seed=3)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = off_forward(state, x, layout)
    return _checkpoint(state), state, x, logits


@pytest.fixture(scope="module")
def drive(official):
    server = FakeDrive(confirm_above=1 << 20).start()  # the ~45 MB checkpoint goes through the confirmation page
    yield server
    server.stop()


@pytest.fixture()
def env(drive, official, tmp_path, monkeypatch):
    """The stand-in as the Drive endpoints, serving the official folder; a fresh cache (returned)."""
    for k, v in drive.env().items():
        monkeypatch.setenv(k, v)
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no Hub is contacted for an unpinned entry
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    drive.add_folder(FOLDER, {"model_best.pth.tar": (FILE_ID, official[0]),
                              "log.txt": ("1LogLogLogLogLogLogLogLog0123", b"epoch 1")})
    drive.embedded = True
    drive.heal()
    drive.requests.clear()
    return cache


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _no_usable_entry(cache: Path) -> None:
    root = cache / "sdnet-drive"
    assert not (root / f"{NAME}.json").exists()
    assert not (root / NAME / "model.safetensors").exists()


def test_pull_converts_the_official_checkpoint(drive, official, env, capsys) -> None:
    data, state, x, want = official
    code, out, err = run_cli(capsys, "pull-weights", NAME)
    assert code == 0, err
    path = Path(out.strip())
    assert path == env / "sdnet-drive" / NAME
    assert _sha(data) in err and "official Google Drive" in err
    model, config = load_model_dir(path)  # what `sdnet eval` loads
    with torch.no_grad():
        got = model(x)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    cfg = json.loads((path / "config.json").read_text())
    assert (cfg["architecture"], cfg["num_classes"], cfg["stem_type"]) == ("sdnet18", 1000, "imagenet")
    assert cfg["dataset"] == "imagenet"
    assert (cfg["mean"], cfg["std"]) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert cfg["model_args"] == {"lmbd": 0.1, "n_steps": 2, "mu": 0.0, "non_negative": True}
    prov = cfg["provenance"]
    assert prov["sha256"] == _sha(data) and prov["size"] == len(data) and prov["file_id"] == FILE_ID
    assert prov["folder_url"] == f"https://drive.google.com/drive/folders/{FOLDER}"
    assert prov["source_url"] == f"{drive.drive}/uc?export=download&id={FILE_ID}"
    assert prov["served_by"] == drive.usercontent  # after the confirmation form
    # the protocol: listing, /uc, its redirect, the confirmation form sent back with its uuid
    assert drive.count("/embeddedfolderview") == 1 and drive.count("/uc?") == 1
    assert drive.count("confirm=t") == 1 and drive.count("uuid=") == 1
    assert not (env / "sdnet-drive" / ".partial" / f"{FILE_ID}.part").exists()

    drive.requests.clear()
    code, out2, err = run_cli(capsys, "pull-weights", NAME, "--json")
    assert code == 0, err and drive.requests == []  # the second pull is offline
    got = json.loads(out2)
    assert got["path"] == str(path) and got["source"] == "drive" and got["original_sha256"] == _sha(data)
    assert got["revision"] == f"drive:{FILE_ID}"


def test_second_pull_works_with_the_server_gone_and_offline(drive, official, env, monkeypatch) -> None:
    first = pull(PullOptions(NAME))
    monkeypatch.setenv("SDNET_DRIVE_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pull(PullOptions(NAME)) == first


def test_changed_file_on_the_server_is_refused(drive, official, env, capsys) -> None:
    data = official[0]
    first = pull(PullOptions(NAME))
    record = (env / "sdnet-drive" / f"{NAME}.json").read_bytes()
    (Path(first.path) / "config.json").write_text("{}")  # the cached model is damaged: the next pull downloads again
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0xFF
    drive.add_folder(FOLDER, {"model_best.pth.tar": (FILE_ID, bytes(changed))})
    code, out, err = run_cli(capsys, "pull-weights", NAME)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "changed on Google Drive" in err and _sha(bytes(changed))[:16] in err
    assert (env / "sdnet-drive" / f"{NAME}.json").read_bytes() == record  # the first download's record stays
    assert not Path(first.path).exists() and not list((env / "sdnet-drive" / ".partial").glob("*.part"))


def test_damaged_cached_model_is_fetched_again(drive, official, env) -> None:
    first = pull(PullOptions(NAME))
    weights = Path(first.path) / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF
    weights.write_bytes(bytes(raw))
    drive.requests.clear()
    again = pull(PullOptions(NAME))
    assert drive.count("/uc?") == 1  # downloaded again: the original's sha256 matched the record
    assert (again.path, again.original_sha256) == (first.path, first.original_sha256)
    # (safetensors writes its metadata in hash-map order, so the re-converted file's bytes may differ)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == again.sha256
    drive.requests.clear()
    assert pull(PullOptions(NAME)) == again and drive.requests == []


def test_zoo_pin_is_checked(drive, official, env, monkeypatch) -> None:
    monkeypatch.setitem(zoo.ZOO, NAME, zoo.ZooEntry(**{**ENTRY.__dict__, "drive_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="zoo's pinned sha256"):
        pull(PullOptions(NAME))
    _no_usable_entry(env)


def test_truncated_download_is_resumed(drive, official, env) -> None:
    drive.set_fault("truncate-once")
    res = pull(PullOptions(NAME))
    ranges = [r for _, p, r in drive.requests if r]
    assert len(ranges) == 1 and int(ranges[0][6:].split("-")[0]) == len(official[0]) // 3
    assert res.original_sha256 == _sha(official[0])


def test_cut_download_resumes_in_the_next_pull(drive, official, env, capsys) -> None:
    drive.set_fault("stall")
    code, _, err = run_cli(capsys, "pull-weights", NAME, "--timeout", "1")
    assert code == 1 and "no data for 1 s" in err and len(err.strip().splitlines()) == 1
    part = env / "sdnet-drive" / ".partial" / f"{FILE_ID}.part"
    have = part.stat().st_size
    assert have > 0
    _no_usable_entry(env)
    drive.heal()
    drive.requests.clear()
    assert pull(PullOptions(NAME)).original_sha256 == _sha(official[0])
    resumed = [r for _, p, r in drive.requests if "confirm=t" in p]
    assert resumed == [f"bytes={have}-"]  # the file request after the confirmation page asks for the rest


def test_listing_from_the_folder_page_script(drive, official, env) -> None:
    drive.embedded = False  # the older page: window['_DRIVE_ivd']
    assert pull(PullOptions(NAME)).original_sha256 == _sha(official[0])
    assert drive.count("/drive/folders/") == 1


@pytest.mark.parametrize("fault, code, expect", [
    ("rate-limit", 1, "Too many users have viewed or downloaded this file recently"),
    ("rate-limit-429", 1, "Too many users have viewed or downloaded this file recently"),
    ("error-page", 1, "Page Not Found"),
    ("html-as-file", 1, "not a PyTorch checkpoint"),
    ("500", 1, "HTTP 500"),
    ("truncate", 1, "truncated at"),
])
def test_server_faults_are_one_line_and_leave_nothing(drive, env, capsys, fault, code, expect) -> None:
    drive.set_fault(fault)
    got, out, err = run_cli(capsys, "pull-weights", NAME, "--timeout", "5")
    assert got == code and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expect in err
    _no_usable_entry(env)
    parts = list((env / "sdnet-drive" / ".partial").glob("*.part"))
    assert parts == [] or fault == "truncate"  # only a cut transfer keeps its bytes, to resume


class _Boom:
    def __reduce__(self):
        return (print, ("pickled code ran",))


@pytest.mark.parametrize("content, expect", [
    ("cifar", "does not fit the model"),
    ("pickle", "refused by torch.load(weights_only=True)"),
    ("nan", "holds NaN values"),
])
def test_bad_checkpoints_are_refused(drive, official, env, capsys, content, expect) -> None:
    state = {k: v.clone() for k, v in official[1].items()}
    if content == "cifar":
        data = _checkpoint(fake_official_state(LAYOUTS["sdnet18-cifar10-sc-10"]))
    elif content == "pickle":
        buf = io.BytesIO()
        torch.save({"state_dict": state, "hook": _Boom()}, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
        data = buf.getvalue()
    else:
        state["linear.weight"][0, 0] = float("nan")
        data = _checkpoint(state)
    drive.add_folder(FOLDER, {"model_best.pth.tar": (FILE_ID, data)})
    code, out, err = run_cli(capsys, "pull-weights", NAME)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert expect in err and "pickled code ran" not in out + err
    _no_usable_entry(env)
    assert not list((env / "sdnet-drive" / ".partial").glob("*.part"))


def test_folder_without_the_checkpoint(drive, env, capsys) -> None:
    drive.add_folder(FOLDER, {"checkpoint.pth.tar": ("1OtherOtherOtherOtherOther0123", b"x")})
    code, _, err = run_cli(capsys, "pull-weights", NAME)
    assert code == 1 and "holds no model_best.pth.tar" in err and "checkpoint.pth.tar" in err
    _no_usable_entry(env)


def test_list_shows_source_cached_and_size(drive, official, env, capsys) -> None:
    code, out, err = run_cli(capsys, "pull-weights", "--list")
    assert "official Drive" in next(ln for ln in err.splitlines() if NAME + " " in ln)
    code, out, _ = run_cli(capsys, "pull-weights", "--list", "--json")
    rows = {r["name"]: r for r in json.loads(out)["models"]}
    assert code == 0 and rows[NAME]["source"] == "drive"
    assert rows[NAME]["cached"] is False and rows[NAME]["size"] is None
    assert rows["sdnet18_all-imagenet"]["source"] == "none"
    pull(PullOptions(NAME))
    code, out, _ = run_cli(capsys, "pull-weights", "--list", "--json")
    row = {r["name"]: r for r in json.loads(out)["models"]}[NAME]
    assert row["cached"] is True and row["size"] == len(official[0])
    code, out, err = run_cli(capsys, "pull-weights", "--list")
    line = next(ln for ln in err.splitlines() if NAME + " " in ln)
    assert "cached (Drive)" in line and f"{len(official[0]) / 2**20:.1f} MiB" in line


def test_entry_without_a_folder_and_revision_flag(env, capsys) -> None:
    code, _, err = run_cli(capsys, "pull-weights", "sdnet18_all-imagenet")
    assert code == 2 and "links no Google Drive folder" in err
    code, _, err = run_cli(capsys, "pull-weights", NAME, "--revision", "main")
    assert code == 2 and "--revision applies to Hub repos" in err


def test_offline_cold_cache_says_what_to_do(drive, env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(capsys, "pull-weights", NAME)
    assert code == 2 and "HF_HUB_OFFLINE" in err and drive.requests == []


def test_sdnet_eval_of_the_pulled_model_matches_the_official_forward(drive, official, env, tmp_path, capsys) -> None:
    """``sdnet eval`` on a 2-image ImageFolder: its loss equals cross-entropy of the official forward's logits."""
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image

    from sdnet_cli.data.datasets import load_raw_images

    path = pull(PullOptions(NAME)).path
    rng = np.random.default_rng(0)
    for i in range(1000):  # the class list comes from train/; val/ holds one image of two classes
        (tmp_path / "inet" / "train" / f"n{i:05d}").mkdir(parents=True)
    for c in ("n00007", "n00993"):
        (tmp_path / "inet" / "val" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)).save(tmp_path / "inet" / "val" / c / "a.png")
    code, out, err = run_cli(capsys, "eval", path, "--data-root", tmp_path / "inet", "--image-size", "64",
                             "--batch-size", "2", "--device", "cpu", "--json")
    assert code == 0, err
    res = json.loads(out)
    images, labels = load_raw_images("imagenet", "test", tmp_path / "inet", 64)  # the same resize + centre crop
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        logits = off_forward(official[1], x, LAYOUTS["sdnet18-imagenet-sc-1000"])
    assert res["loss"] == pytest.approx(F.cross_entropy(logits, torch.from_numpy(labels)).item(), abs=1e-4)
    assert res["top1"] == pytest.approx(100 * (logits.argmax(1).numpy() == labels).mean())
    assert list(labels) == [7, 993]


def test_a_pinned_hub_revision_takes_precedence(drive, env, tmp_path, monkeypatch) -> None:
    from hub_server import FakeHub, make_model_dir

    model_dir, _, _ = make_model_dir(tmp_path / "exported")
    hub = FakeHub().start()
    try:
        commit = hub.add_folder(ENTRY.repo_id, model_dir)
        sha = _sha((model_dir / "model.safetensors").read_bytes())
        monkeypatch.setitem(zoo.ZOO, NAME, zoo.ZooEntry(**{**ENTRY.__dict__, "revision": commit, "sha256": sha}))
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        res = pull(PullOptions(NAME))
    finally:
        hub.stop()
    assert (res.source, res.revision, res.sha256) == ("hub", commit, sha)
    assert drive.requests == [] and hub.count("GET", "/lfs/") == 1


@pytest.mark.parametrize("style", ["link", "cookie"])
def test_older_confirmation_pages(drive, official, env, style) -> None:
    """The warning page of the older service: a confirm link (gdown) or a download_warning cookie (RobustBench)."""
    drive.confirm_style = style
    try:
        res = pull(PullOptions(NAME))
    finally:
        drive.confirm_style = "form"
    assert res.original_sha256 == _sha(official[0])
    assert drive.count("confirm=T0k3n") == 1 and drive.count("/download") == 0


def test_a_file_changed_between_cut_and_resume_is_fetched_whole(drive, official, env, capsys) -> None:
    """The resume sends If-Range with the first answer's ETag: a changed file comes back whole, never mixed."""
    drive.set_fault("stall")
    code, _, _ = run_cli(capsys, "pull-weights", NAME, "--timeout", "1")
    assert code == 1
    drive.heal()
    state = {k: v.clone() for k, v in official[1].items()}
    state["linear.bias"] += 1.0
    other = _checkpoint(state)
    drive.add_folder(FOLDER, {"model_best.pth.tar": (FILE_ID, other)})
    drive.requests.clear()
    res = pull(PullOptions(NAME))
    assert res.original_sha256 == _sha(other)  # no record yet: the new file, whole
    assert [r for _, p, r in drive.requests if "confirm=t" in p][0].startswith("bytes=")
    assert torch.equal(load_model_dir(res.path)[0].linear.bias, state["linear.bias"])


def test_one_pull_at_a_time_per_entry(drive, env) -> None:
    from sdnet_cli.outputs import OutputLock

    with OutputLock(env / "sdnet-drive" / NAME):  # as another process pulling it would hold it
        with pytest.raises(ValueError, match="being pulled .* by another process"):
            pull(PullOptions(NAME))
    assert drive.requests == []


def test_one_endpoint_for_both_hosts(official, env, monkeypatch) -> None:
    """Only SDNET_DRIVE_ENDPOINT set: the usercontent requests go to it too (one stand-in for both hosts)."""
    single = FakeDrive(single_host=True).start()
    try:
        single.add_folder(FOLDER, {"model_best.pth.tar": (FILE_ID, official[0])})
        monkeypatch.delenv("SDNET_DRIVE_USERCONTENT_ENDPOINT")
        monkeypatch.setenv("SDNET_DRIVE_ENDPOINT", single.drive)
        assert pull(PullOptions(NAME)).original_sha256 == _sha(official[0])
        assert single.count("/download?") == 2  # the confirmation page, then the file
    finally:
        single.stop()


def test_folder_gone_is_one_line(drive, env, capsys) -> None:
    drive.folders.pop(FOLDER)
    code, out, err = run_cli(capsys, "pull-weights", NAME)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert f"the listing of folder {FOLDER}" in err and "Page Not Found" in err
    _no_usable_entry(env)


def test_unreachable_drive_names_its_endpoint(env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SDNET_DRIVE_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    code, out, err = run_cli(capsys, "pull-weights", NAME, "--timeout", "2")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "cannot connect to http://127.0.0.1:9" in err and "SDNET_DRIVE_ENDPOINT" in err
    _no_usable_entry(env)

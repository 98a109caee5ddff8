"""Bounded downloads: a Hub (tests/hub_server.py) that truncates, stalls or answers 500, with the real huggingface_hub client.

Each fault: ``sdnet pull-weights --timeout 2`` exits 1 within the bound with one line naming what the server
did, the cache holds no partial or wrong file, and a pull after the server healed works. The huggingface_hub
settings the pull changes for its call (timeouts, HTTP client factory, logger level) are back afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

import pytest

from hub_server import FakeHub, run_cli
from sdnet_cli.hub import PullOptions, pull

REPO = "org/bounds"
TIMEOUT = 2.0
# the bound: TIMEOUT without new data, plus huggingface_hub's sleeps between its retries (1 s, 2 s) and
# the slack of a loaded 2-core test machine
BOUND = TIMEOUT + 3 + 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small repo with the two files a pull fetches (a pull verifies them; it does not build the model)."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("bounds") / "m"
    folder.mkdir()
    save_file({"w": torch.randn(384, 384, generator=torch.Generator().manual_seed(0))}, folder / "model.safetensors")
    (folder / "config.json").write_text('{"architecture": "sdnet18", "num_classes": 10}\n' + " " * 600)
    return folder


@pytest.fixture(scope="module")
def hub(model_dir):
    server = FakeHub().start()
    server.add_folder(REPO, model_dir)
    yield server
    server.stop()


@pytest.fixture()
def cache(hub, tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub.heal()
    hub.requests.clear()
    yield cache
    hub.heal()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _assert_nothing_unusable(cache: Path, model_dir: Path) -> None:
    """Every file the cache offers (a snapshot link) is complete and right; blobs are complete or ``.incomplete``."""
    good = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    for link in cache.rglob("snapshots/*/*"):
        assert link.read_bytes() == good[link.name], f"{link.name} in the cache is partial or wrong"
    for blob in cache.rglob("blobs/*"):
        if not blob.name.endswith(".incomplete"):
            assert _sha(blob.read_bytes()) == blob.name or blob.read_bytes() in good.values()


@pytest.mark.parametrize("where, kind, expect", [
    ("cdn", "truncate", r"truncated at \d+ of \d+ bytes by http://127\.0\.0\.1:\d+"),
    ("hub", "truncate", r"config\.json failed: truncated at \d+ of \d+ bytes"),
    ("cdn", "stall", r"no data for 2 s from http://127\.0\.0\.1:\d+"),
    ("hub", "stall", r"no data for 2 s from http://127\.0\.0\.1:\d+"),
    ("cdn", "stall-body", r"no data for 2 s from http://127\.0\.0\.1:\d+ after \d+ bytes"),
    ("hub", "500", r"HTTP 500 from http://127\.0\.0\.1:\d+"),
    ("cdn", "500", r"HTTP 500 from http://127\.0\.0\.1:\d+"),
])
def test_bad_server_fails_within_bound_with_one_line(hub, model_dir, cache, capsys, where, kind, expect) -> None:
    hub.fail(where, kind)
    start = time.monotonic()
    code, out, err = run_cli(capsys, "pull-weights", REPO, "--timeout", str(TIMEOUT))
    elapsed = time.monotonic() - start
    hub.heal()
    assert code == 1 and out == "", err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(expect, err), err
    assert "try again later" in err  # what to do
    assert elapsed < BOUND, f"took {elapsed:.1f} s"
    _assert_nothing_unusable(cache, model_dir)
    res = pull(PullOptions(REPO))  # the server healed: a pull into the same cache works
    assert res.sha256 == _sha((model_dir / "model.safetensors").read_bytes())
    assert (Path(res.path) / "config.json").read_bytes() == (model_dir / "config.json").read_bytes()


def test_default_bound_is_stated_and_bounded(hub, cache) -> None:
    opts = PullOptions(REPO)
    assert opts.timeout == 60.0 and opts.retries == 2


def test_truncating_server_stops_after_bounded_attempts(hub, cache) -> None:
    """A proxy that cuts every reply (ignoring Range) no longer loops: 1 + retries GETs of the blob."""
    hub.fail("cdn", "truncate")
    with pytest.raises(RuntimeError, match="truncated at"):
        pull(PullOptions(REPO, timeout=TIMEOUT, retries=1))
    assert hub.count("GET", "/lfs/") == 2


def test_huggingface_hub_settings_restored(hub, cache) -> None:
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    before = (constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT, _http._GLOBAL_CLIENT_FACTORY,
              logging.getLogger("huggingface_hub").level)
    hub.fail("hub", "500")
    with pytest.raises(RuntimeError, match="HTTP 500"):
        pull(PullOptions(REPO, timeout=TIMEOUT))
    hub.heal()
    pull(PullOptions(REPO, timeout=7))
    after = (constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT, _http._GLOBAL_CLIENT_FACTORY,
             logging.getLogger("huggingface_hub").level)
    assert after == before


@pytest.mark.parametrize("args, expect", [
    (["--timeout", "0"], "--timeout must be a finite number of seconds > 0"),
    (["--timeout", "nan"], "--timeout must be a finite number of seconds > 0"),
    (["--timeout", "-5"], "--timeout must be a finite number of seconds > 0"),
    (["--cache-dir", "FILE"], "is a file; pass a folder for the Hub cache"),
])
def test_bad_bounds_and_cache_dir_exit_2_before_any_request(hub, cache, tmp_path, capsys, args, expect) -> None:
    (tmp_path / "FILE").write_text("not a folder")
    args = [str(tmp_path / a) if a == "FILE" else a for a in args]
    code, out, err = run_cli(capsys, "pull-weights", REPO, *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert expect in err
    assert hub.requests == []


def test_hub_cache_env_that_is_a_file_exits_2(hub, cache, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cachefile"))
    code, _, err = run_cli(capsys, "pull-weights", REPO)
    assert code == 2 and "is a file" in err and hub.requests == []

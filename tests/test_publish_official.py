"""scripts/publish_official.py: official checkpoint (Drive stand-in) → export → push → verify → pins."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from drive_server import FakeDrive
from hub_server import FakeHub
from sdnet_cli.hub import PullOptions, pull, zoo
from test_official import LAYOUTS, fake_official_state, off_forward

ROOT = Path(__file__).resolve().parents[1]
NAME = "sdnet18-cifar10"


def _script():
    spec = importlib.util.spec_from_file_location("publish_official", ROOT / "scripts" / "publish_official.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeApi:
    """The two ``HfApi`` calls ``push_to_hub`` makes, committing into the local Hub stand-in."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub

    def create_repo(self, repo_id: str, **_: object) -> None:
        pass

    def upload_folder(self, repo_id: str, folder_path: str, allow_patterns: list[str], **_: object):
        commit = self.hub.add_files(repo_id, {n: (Path(folder_path) / n).read_bytes() for n in allow_patterns})
        return SimpleNamespace(commit_url=f"{self.hub.endpoint}/{repo_id}/commit/{commit}")


@pytest.fixture()
def servers(tmp_path, monkeypatch):
    state = fake_official_state(LAYOUTS["sdnet18-cifar10-sc-10"], seed=4)
    buf = io.BytesIO()
    torch.save({"epoch": 220, "state_dict": state}, buf)
    drive, hub = FakeDrive().start(), FakeHub().start()
    files = {"model_best.pth.tar": ("1CifarCifarCifarCifarCifar0123", buf.getvalue())}
    drive.add_folder(zoo.get_entry(NAME).drive_folder, files)
    for k, v in {**drive.env(), "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    yield drive, hub, state, buf.getvalue()
    drive.stop()
    hub.stop()


def test_publish_pins_what_was_pushed(servers, tmp_path, monkeypatch) -> None:
    drive, hub, state, data = servers
    zoo_py = tmp_path / "zoo.py"
    shutil.copy(ROOT / "sdnet_cli" / "hub" / "zoo.py", zoo_py)
    pins = _script().publish(NAME, workdir=tmp_path / "work", zoo_py=zoo_py, api=FakeApi(hub))
    assert pins["drive_sha256"] == hashlib.sha256(data).hexdigest()
    assert pins["revision"] == hub.repos[f"sdnet/{NAME}"].refs["main"]
    block = re.search(r"PINS: dict\[str, dict\[str, Any\]\] = (\{.*?\})\n# -- pins: end --", zoo_py.read_text(), re.S)
    assert ast.literal_eval(block.group(1)) == {NAME: pins}
    ast.parse(zoo_py.read_text())  # still Python
    # the pinned entry now pulls from the Hub, and gives the official forward's logits
    monkeypatch.setitem(zoo.ZOO, NAME, zoo.ZooEntry(**{**zoo.get_entry(NAME).__dict__, **pins}))
    drive.requests.clear()
    res = pull(PullOptions(NAME))
    assert res.source == "hub" and res.revision == pins["revision"] and res.sha256 == pins["sha256"]
    assert drive.requests == []
    from sdnet_cli import load_model

    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = load_model(res.path)(x), off_forward(state, x, LAYOUTS["sdnet18-cifar10-sc-10"])
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


def test_dry_run_and_a_wrong_pin_write_nothing(servers, tmp_path, monkeypatch) -> None:
    drive, hub, _, data = servers
    zoo_py = tmp_path / "zoo.py"
    shutil.copy(ROOT / "sdnet_cli" / "hub" / "zoo.py", zoo_py)
    before = zoo_py.read_bytes()
    script = _script()
    pins = script.publish(NAME, workdir=tmp_path / "w1", zoo_py=zoo_py, api=FakeApi(hub), dry_run=True)
    assert pins["revision"] is None and pins["drive_sha256"] == hashlib.sha256(data).hexdigest()
    monkeypatch.setitem(zoo.ZOO, NAME, zoo.ZooEntry(**{**zoo.get_entry(NAME).__dict__, "drive_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="not the zoo's drive_sha256"):
        script.publish(NAME, workdir=tmp_path / "w2", zoo_py=zoo_py, api=FakeApi(hub))
    assert zoo_py.read_bytes() == before and hub.repos == {}

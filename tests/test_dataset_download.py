"""CIFAR-10/100 downloads (issue 23 item 4): bounded, MD5-checked, unpacked safely and atomically.

A local server on 127.0.0.1 stands in for the official host (``SDNET_CIFAR_URL``): one that never answers
makes ``sdnet train`` fail within ``SDNET_DOWNLOAD_TIMEOUT`` with one line, exit 1; one that serves a small
tarball (its MD5 put in place of the published one) gives a dataset equal to the files in it. Archives that
reach outside their folder or hold links are refused; an existing folder is never replaced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cifar_files import tar_gz, write_tree
from cli_helpers import run_cli
from sdnet_cli.data import cifar
from sdnet_cli.data.cifar_download import download_cifar
from sdnet_cli.data.datasets import load_raw_images
from sdnet_cli.errors import NetworkError, UsageError

TIMEOUT = 2
BOUND = TIMEOUT + 1 + 8  # the bound, the pause between attempts, a loaded 2-core machine


class Server:
    """Serves ``files`` (name → bytes) over HTTP on 127.0.0.1 and counts the requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests = files, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:  # noqa: ANN002
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                body = outer.files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def silent(monkeypatch):
    """A port that accepts connections (the kernel's backlog) and never sends a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("SDNET_CIFAR_URL", base)
    monkeypatch.setenv("SDNET_DOWNLOAD_TIMEOUT", str(TIMEOUT))
    yield base
    sock.close()


def _archive(tmp: Path, name: str = "cifar10", **extra) -> tuple[bytes, dict]:
    """A ``.tar.gz`` of a small fake CIFAR folder and the arrays it holds."""
    src = tmp / "src"
    expected = write_tree(src, name, "py2", n=4)
    return tar_gz(src / cifar.LAYOUTS[name].folder, **extra), expected


@pytest.fixture()
def served(tmp_path, monkeypatch):
    """``make(name, payload)``: serve ``payload`` as the archive of ``name`` with its MD5 taken as published."""
    servers = []

    def make(name: str, payload: bytes, md5: str | None = None) -> Server:
        layout = cifar.LAYOUTS[name]
        md5 = md5 or hashlib.md5(payload).hexdigest()
        monkeypatch.setitem(cifar.LAYOUTS, name, dataclasses.replace(layout, md5=md5))
        servers.append(Server({layout.archive: payload}))
        monkeypatch.setenv("SDNET_CIFAR_URL", servers[-1].base + "/")
        monkeypatch.setenv("SDNET_DOWNLOAD_TIMEOUT", str(TIMEOUT))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _train(root: Path, out: Path, name: str = "cifar10") -> list[str]:
    return ["train", "--dataset", name, "--data-root", str(root), "--epochs", "1", "--batch-size", "4",
            "--set", "train.limit_batches=1", "--set", "train.threads=1", "--output", str(out)]


def _entries(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_silent_server_fails_within_the_timeout(silent, tmp_path, capsys):
    start = time.monotonic()
    code, _, err = run_cli(capsys, *_train(tmp_path / "data", tmp_path / "run"))
    took = time.monotonic() - start
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and re.search(rf"no data for {TIMEOUT} s from {re.escape(silent)}", lines[0]), lines
    assert "cifar-10-python.tar.gz" in lines[0] and "SDNET_DOWNLOAD_TIMEOUT=SECONDS" in lines[0], lines
    assert took < BOUND, took
    assert not (tmp_path / "run").exists()
    assert [n for n in _entries(tmp_path / "data") if not n.endswith(".part")] == []  # nothing usable left


def test_served_tarball_is_downloaded_checked_and_unpacked(served, tmp_path, capsys):
    payload, expected = _archive(tmp_path)
    server = served("cifar10", payload)
    code, _, err = run_cli(capsys, *_train(tmp_path / "data", tmp_path / "run"))
    assert code == 0, err
    assert server.requests == ["/cifar-10-python.tar.gz"]
    assert _entries(tmp_path / "data") == ["cifar-10-batches-py"]  # archive removed, no staging folder left
    for split in ("train", "test"):
        x, y = load_raw_images("cifar10", split, tmp_path / "data", download=False)
        np.testing.assert_array_equal(x, expected[split][0])
        np.testing.assert_array_equal(y, expected[split][1])
    server.close()  # a second run finds the folder and needs no network
    code, _, err = run_cli(capsys, *_train(tmp_path / "data", tmp_path / "run2"))
    assert code == 0, err


def test_cifar100_through_the_library(served, tmp_path):
    payload, expected = _archive(tmp_path, "cifar100")
    served("cifar100", payload)
    x, y = load_raw_images("cifar100", "test", tmp_path / "data")
    np.testing.assert_array_equal(x, expected["test"][0])
    np.testing.assert_array_equal(y, expected["test"][1])


def test_wrong_checksum_is_a_failure_and_leaves_nothing(served, tmp_path, capsys):
    payload, _ = _archive(tmp_path)
    served("cifar10", payload, md5=cifar.LAYOUTS["cifar10"].md5)  # the published one: this archive is not it
    code, _, err = run_cli(capsys, *_train(tmp_path / "data", tmp_path / "run"))
    assert code == 1 and "checksum mismatch" in err and "c58f30108f718f92721af3b95e74349a" in err, err
    assert len(err.strip().splitlines()) == 1
    assert _entries(tmp_path / "data") == [] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra", [
    {"extra": {"../evil.txt": b"x"}},
    {"extra": {"/tmp/abs-evil.txt": b"x"}},
    {"symlink": ("cifar-10-batches-py/link", "/etc/passwd")},
    {"symlink": ("cifar-10-batches-py/up", "../../outside")},
])
def test_archive_reaching_outside_is_refused(served, tmp_path, extra):
    payload, _ = _archive(tmp_path, **extra)
    served("cifar10", payload)
    with pytest.raises(UsageError, match="refusing to unpack"):
        download_cifar("cifar10", tmp_path / "data")
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/abs-evil.txt").exists()
    assert [n for n in _entries(tmp_path / "data") if not n.endswith(".tar.gz")] == []


def test_existing_folder_is_never_replaced(served, tmp_path, capsys):
    payload, _ = _archive(tmp_path)
    server = served("cifar10", payload)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, *_train(tmp_path / "data", tmp_path / "run"))
    assert code == 2 and "lacks data_batch_1" in err and len(err.strip().splitlines()) == 1, err
    assert server.requests == [] and _entries(folder) == ["notes.txt"] and (folder / "notes.txt").read_text() == "mine"


def test_archive_on_disk_is_checked_before_unpacking(served, tmp_path, capsys):
    payload, _ = _archive(tmp_path)
    server = served("cifar10", payload)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-python.tar.gz").write_bytes(payload[:-10])
    code, _, err = run_cli(capsys, *_train(tmp_path / "data", tmp_path / "run"))
    assert code == 2 and "not the published" in err and len(err.strip().splitlines()) == 1, err
    assert server.requests == [] and _entries(tmp_path / "data") == ["cifar-10-python.tar.gz"]


@pytest.mark.parametrize("var, value", [("SDNET_CIFAR_URL", "ftp://mirror/x"), ("SDNET_CIFAR_URL", "mirror.org"),
                                        ("SDNET_DOWNLOAD_TIMEOUT", "0"), ("SDNET_DOWNLOAD_TIMEOUT", "nan"),
                                        ("SDNET_DOWNLOAD_TIMEOUT", "soon")])
def test_bad_settings_are_one_line(tmp_path, capsys, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    code, _, err = run_cli(capsys, *_train(tmp_path / "data", tmp_path / "run"))
    assert code == 2 and var in err and len(err.strip().splitlines()) == 1, err


def test_network_failure_is_not_a_usage_error(silent, tmp_path):
    with pytest.raises(NetworkError) as e:
        load_raw_images("cifar10", "test", tmp_path / "data")
    assert not isinstance(e.value, ValueError)


def test_archive_that_breaks_midway_leaves_no_folder(served, tmp_path):
    """Unpacking is staged: an archive cut in the middle of its members gives no folder and no temporary."""
    payload, _ = _archive(tmp_path)
    served("cifar10", payload[: len(payload) // 2])  # its own MD5 is taken as published: only unpacking can fail
    with pytest.raises(UsageError, match="could not be unpacked"):
        download_cifar("cifar10", tmp_path / "data")
    assert _entries(tmp_path / "data") == ["cifar-10-python.tar.gz"]  # no folder, no hidden staging folder left


def test_refused_connection_says_how(tmp_path, monkeypatch):
    """Nothing listens on the mirror's port: exit-1 kind, naming the archive, the server and the way round."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # the port is now closed: connections are refused
    monkeypatch.setenv("SDNET_CIFAR_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(NetworkError) as e:
        load_raw_images("cifar100", "train", tmp_path / "data")
    msg = str(e.value)
    assert f"cannot connect to http://127.0.0.1:{port}" in msg and "(3 requests" in msg, msg
    assert "cifar-100-python.tar.gz" in msg and "SDNET_CIFAR_URL" in msg and "extract it into" in msg, msg

"""The distributed CIFAR-C layout: loading, validation errors, and the bounded, resumable, checksummed download."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sdnet_cli.data import cifar_c
from sdnet_cli.errors import NetworkError, UsageError
from sdnet_cli.netio import NetBounds


def write_fake_cifar_c(folder: Path, corruptions: dict[str, np.ndarray], labels: np.ndarray) -> Path:
    """``<name>.npy`` (5·n, H, W, 3) uint8 + ``labels.npy`` (5·n,) — the official layout."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "labels.npy", labels)
    for name, arr in corruptions.items():
        np.save(folder / f"{name}.npy", arr)
    return folder


@pytest.fixture()
def fake_dir(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(5 * 6, 8, 8, 3), dtype=np.uint8)
    labels = np.tile(np.arange(6) % 3, 5).astype(np.uint8)  # the official labels.npy is uint8
    return write_fake_cifar_c(tmp_path / "CIFAR-10-C", {"fog": data}, labels), data, labels


def test_load_severity_blocks(fake_dir) -> None:
    folder, data, labels = fake_dir
    for s in range(1, 6):
        x, y = cifar_c.load_cifar_c(folder, "fog", s)
        np.testing.assert_array_equal(x, data[(s - 1) * 6:s * 6])
        np.testing.assert_array_equal(y, labels[(s - 1) * 6:s * 6])
        assert y.dtype == np.int64
    assert cifar_c.resolve_cifar_c_dir(folder.parent) == folder
    assert cifar_c.resolve_cifar_c_dir(folder) == folder


def test_missing_truncated_and_mismatched(fake_dir, tmp_path: Path) -> None:
    folder, data, labels = fake_dir
    with pytest.raises(FileNotFoundError, match="snow"):
        cifar_c.load_cifar_c(folder, "snow", 1)
    raw = (folder / "fog.npy").read_bytes()
    (folder / "fog.npy").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(ValueError, match="truncated"):
        cifar_c.load_cifar_c(folder, "fog", 1)
    np.save(folder / "fog.npy", data)
    np.save(folder / "labels.npy", labels[:-5])
    with pytest.raises(ValueError, match="same length"):
        cifar_c.load_cifar_c(folder, "fog", 1)
    np.save(folder / "labels.npy", labels[:-1])
    with pytest.raises(ValueError, match=r"\(5·n,\)"):
        cifar_c.load_cifar_c(folder, "fog", 1)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "fog.npy", data.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        cifar_c.load_cifar_c(folder, "fog", 1)
    (folder / "fog.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="not a readable .npy"):
        cifar_c.load_cifar_c(folder, "fog", 1)
    with pytest.raises(FileNotFoundError, match=r"CIFAR-C directory .*nowhere not found \(pass --download"):
        cifar_c.resolve_cifar_c_dir(tmp_path / "nowhere")


# -- download against a local HTTP server -------------------------------------------------------------
class _Server:
    """A 127.0.0.1 server for one file with HTTP Range support; can cut the first reply short.

    ``fault``: ``"truncate"`` (every reply: full Content-Length, a third of the body, Range ignored),
    ``"stall"`` (headers, then nothing), ``"500"``; ``None`` serves normally.
    """

    def __init__(self, payload: bytes, cut_first_at: int | None = None, honour_range: bool = True) -> None:
        self.payload, self.cut, self.honour = payload, cut_first_at, honour_range
        self.ranges: list[str | None] = []
        self.fault: str | None = None
        self.healed = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_GET(self) -> None:  # noqa: N802
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if outer.fault == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.fault in ("truncate", "stall"):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(outer.payload)))
                    self.end_headers()
                    if outer.fault == "stall":
                        outer.healed.wait(30)
                    else:
                        self.wfile.write(outer.payload[: len(outer.payload) // 3])
                    self.close_connection = True
                    return
                start = int(rng.split("=")[1].split("-")[0]) if (rng and outer.honour) else 0
                body = outer.payload[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut is not None:
                    body, outer.cut = body[: outer.cut], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/CIFAR-10-C.tar"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.healed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def make_tar(folder_name: str = "CIFAR-10-C") -> tuple[bytes, np.ndarray]:
    data = np.random.default_rng(1).integers(0, 256, size=(5 * 400, 8, 8, 3), dtype=np.uint8)
    labels = np.tile(np.arange(400) % 10, 5).astype(np.uint8)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, arr in (("labels.npy", labels), ("gaussian_noise.npy", data)):
            b = io.BytesIO()
            np.save(b, arr)
            info = tarfile.TarInfo(f"{folder_name}/{name}")
            info.size = len(b.getvalue())
            tar.addfile(info, io.BytesIO(b.getvalue()))
    return buf.getvalue(), data


def test_download_resumes_checks_and_unpacks(tmp_path: Path) -> None:
    """A reply cut at a third is resumed in the same call (HTTP Range), checked and unpacked."""
    payload, data = make_tar()
    md5 = hashlib.md5(payload).hexdigest()
    seen: list[tuple[int, int | None]] = []
    with _Server(payload, cut_first_at=len(payload) // 3) as srv:
        folder = cifar_c.download_cifar_c(tmp_path, "cifar10", lambda d, t: seen.append((d, t)), url=srv.url, md5=md5)
        assert srv.ranges == [None, f"bytes={len(payload) // 3}-"]
    assert folder == tmp_path / "CIFAR-10-C"
    assert seen[-1] == (len(payload), len(payload))
    assert not (tmp_path / "CIFAR-10-C.tar.part").exists() and not (tmp_path / "CIFAR-10-C.tar").exists()
    x, y = cifar_c.load_cifar_c(folder, "gaussian_noise", 2)
    np.testing.assert_array_equal(x, data[400:800])
    # a second call finds the unpacked folder and fetches nothing
    assert cifar_c.download_cifar_c(tmp_path, "cifar10", url="http://127.0.0.1:9/none", md5=md5) == folder


def test_partial_file_of_an_earlier_run_is_resumed(tmp_path: Path) -> None:
    payload, _ = make_tar()
    md5 = hashlib.md5(payload).hexdigest()
    with _Server(payload, cut_first_at=len(payload) // 3) as srv:
        with pytest.raises(NetworkError, match=rf"truncated at {len(payload) // 3} of {len(payload)} bytes"):
            cifar_c.download_cifar_c(tmp_path, "cifar10", url=srv.url, md5=md5, bounds=NetBounds(5, retries=0))
        part = tmp_path / "CIFAR-10-C.tar.part"
        assert part.stat().st_size == len(payload) // 3
        cifar_c.download_cifar_c(tmp_path, "cifar10", url=srv.url, md5=md5)
        assert srv.ranges == [None, f"bytes={len(payload) // 3}-"]
    assert (tmp_path / "CIFAR-10-C" / "labels.npy").is_file()


@pytest.mark.parametrize("fault, expect", [
    ("truncate", r"truncated at \d+ of \d+ bytes by http://127\.0\.0\.1:\d+ \([23] requests"),
    ("stall", r"no data for 2 s from http://127\.0\.0\.1:\d+"),
    ("500", r"HTTP 500 from http://127\.0\.0\.1:\d+ \([23] requests"),
])
def test_bad_server_fails_within_bound(tmp_path: Path, fault: str, expect: str) -> None:
    payload, data = make_tar()
    md5 = hashlib.md5(payload).hexdigest()
    with _Server(payload) as srv:
        srv.fault = fault
        start = time.monotonic()
        with pytest.raises(NetworkError, match=expect) as info:
            cifar_c.download_cifar_c(tmp_path, "cifar10", url=srv.url, md5=md5, bounds=NetBounds(2.0))
        assert time.monotonic() - start < 2.0 + 2 + 5  # the bound, the pauses between attempts, a loaded machine
        assert len(str(info.value).splitlines()) == 1 and "try again later" in str(info.value)
        assert not (tmp_path / "CIFAR-10-C.tar").exists() and not (tmp_path / "CIFAR-10-C").exists()
        srv.fault = None
        srv.healed.set()
        folder = cifar_c.download_cifar_c(tmp_path, "cifar10", url=srv.url, md5=md5)  # a later good run works
    np.testing.assert_array_equal(cifar_c.load_cifar_c(folder, "gaussian_noise", 1)[0], data[:400])


def test_download_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        cifar_c.download_cifar_c(tmp_path / "f", "cifar10", url="http://127.0.0.1:9/none")


def test_download_checksum_mismatch_removes_partial(tmp_path: Path) -> None:
    payload, _ = make_tar()
    with _Server(payload) as srv:
        with pytest.raises(NetworkError, match="checksum mismatch"):
            cifar_c.download_cifar_c(tmp_path, "cifar10", url=srv.url, md5="0" * 32)
    assert not (tmp_path / "CIFAR-10-C.tar.part").exists()
    assert not (tmp_path / "CIFAR-10-C").exists()


def test_download_restarts_when_range_is_ignored(tmp_path: Path) -> None:
    payload, data = make_tar()
    md5 = hashlib.md5(payload).hexdigest()
    (tmp_path / "CIFAR-10-C.tar.part").write_bytes(b"garbage that must be discarded")
    with _Server(payload, honour_range=False) as srv:
        folder = cifar_c.download_cifar_c(tmp_path, "cifar10", url=srv.url, md5=md5)
        assert srv.ranges == ["bytes=30-"]
    np.testing.assert_array_equal(cifar_c.load_cifar_c(folder, "gaussian_noise", 5)[0], data[1600:])


def test_unpack_refuses_paths_outside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="refusing"):
        cifar_c.unpack_tar(tmp_path / "a.tar", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_official_archives_known() -> None:
    assert cifar_c.ARCHIVES["cifar10"].md5 == "56bf5dcef84df0e2308c6dcbcbbd8499"
    assert "2535967" in cifar_c.ARCHIVES["cifar10"].url and "3555552" in cifar_c.ARCHIVES["cifar100"].url
    with pytest.raises(ValueError, match="cifar10"):
        cifar_c.download_cifar_c("/tmp", "digits")

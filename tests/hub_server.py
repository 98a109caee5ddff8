"""A local stand-in for the Hugging Face Hub's download protocol, for tests (127.0.0.1 only).

Two HTTP servers, as on the real Hub: the *hub* answers ``HEAD``/``GET /{org}/{name}/resolve/{rev}/{file}``
and the *CDN* (another origin: another port) serves LFS blobs.

- small files: ``200`` with ``X-Repo-Commit``, ``ETag: "<git blob sha1>"``, ``Content-Length``;
- LFS files (``*.safetensors``, ``*.onnx``, ``*.bin``): ``302`` with ``Location`` on the CDN,
  ``X-Repo-Commit``, ``X-Linked-Etag: "<sha256>"``, ``X-Linked-Size``, ``ETag`` of the LFS pointer;
- renamed repos: ``307`` with a relative ``Location`` to the new name (followed on the same host);
- errors: ``404`` with ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`` (the last with
  ``X-Repo-Commit``), as ``huggingface_hub.utils.hf_raise_for_status`` expects.

``tamper(repo, file, data)`` makes the CDN serve other bytes under the announced sha256 (a corrupted
download); ``requests`` records ``(method, path)`` of every request to both servers.

Faults (``fail(where, kind)``, ``where`` = ``"hub"`` or ``"cdn"``; ``heal()`` ends them): ``"500"`` answers
HTTP 500; ``"html"`` (hub) answers every file of an existing repo with ``200``, an HTML page and an ``ETag``
that is neither a sha256 nor a git sha1 (an md5, as a proxy or web server sends), with ``X-Repo-Commit``; ``"truncate"`` sends the full ``Content-Length`` but a third of the body, then closes (a ``Range``
is ignored, as by a proxy); ``"stall"`` accepts the request and sends nothing; ``"stall-body"`` sends the
headers and a third of the body, then nothing. Stalls end at ``heal()`` (or after 60 s).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cli_helpers import run_cli  # noqa: F401 - re-exported for the hub tests

LFS_SUFFIXES = (".safetensors", ".onnx", ".bin")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    refs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)


class FakeHub:
    """In-memory Hub: ``add_files``/``add_folder`` create commits; ``endpoint`` is the ``HF_ENDPOINT`` to use."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.renamed: dict[str, str] = {}
        self.tampered: dict[str, bytes] = {}  # sha256 → bytes the CDN serves instead
        self.blobs: dict[str, bytes] = {}  # sha256 → content
        self.requests: list[tuple[str, str]] = []
        self.auth_headers: list[str | None] = []
        self.faults: dict[str, str] = {}
        self._healed = threading.Event()
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(cdn=True))
        for s in (self._hub, self._cdn):
            s.daemon_threads = True
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self._hub, self._cdn)]

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def start(self) -> "FakeHub":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.heal()
        for s in (self._hub, self._cdn):
            s.shutdown()
            s.server_close()

    # -- content -------------------------------------------------------------------------------
    def add_files(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` (the whole tree) to ``branch`` of ``repo_id``; returns the 40-hex commit."""
        repo = self.repos.setdefault(repo_id, _Repo())
        h = hashlib.sha1(f"{repo_id}:{branch}:{len(repo.commits)}".encode())
        for name in sorted(files):
            h.update(name.encode() + hashlib.sha256(files[name]).digest())
        commit = h.hexdigest()
        repo.commits[commit] = dict(files)
        repo.refs[branch] = commit
        for data in files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data
        return commit

    def add_folder(self, repo_id: str, folder: str | Path, branch: str = "main") -> str:
        """Commit every regular file at the top of ``folder``."""
        files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
        return self.add_files(repo_id, files, branch)

    def tamper(self, repo_id: str, filename: str, data: bytes, revision: str = "main") -> None:
        """Serve ``data`` instead of the real bytes of ``filename`` while announcing the real sha256."""
        repo = self.repos[repo_id]
        real = repo.commits[repo.refs.get(revision, revision)][filename]
        self.tampered[hashlib.sha256(real).hexdigest()] = data

    def fail(self, where: str, kind: str) -> None:
        """Make the ``hub`` or the ``cdn`` misbehave: ``500``, ``truncate``, ``stall`` or ``stall-body``."""
        assert where in ("hub", "cdn") and kind in ("500", "html", "truncate", "stall", "stall-body"), (where, kind)
        self._healed.clear()
        self.faults[where] = kind

    def heal(self) -> None:
        """End every fault (stalled requests are released)."""
        self.faults.clear()
        self._healed.set()

    def count(self, method: str, contains: str = "") -> int:
        """Number of recorded requests with ``method`` whose path contains ``contains``."""
        return sum(1 for m, p in self.requests if m == method and contains in p)

    # -- HTTP ----------------------------------------------------------------------------------
    def _handler(self, cdn: bool) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
                fault = hub.faults.get("cdn" if cdn else "hub")
                if fault == "500":
                    status, headers, data = 500, {"Content-Type": "application/json"}, b'{"error": "internal"}'
                if fault == "stall":
                    hub._healed.wait(60)
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body and data and fault in ("truncate", "stall-body") and status == 200:
                    self.wfile.write(data[: len(data) // 3])
                    self.wfile.flush()
                    if fault == "stall-body":
                        hub._healed.wait(60)
                    self.close_connection = True
                elif body and data:
                    self.wfile.write(data)

            def _error(self, code: str, body: bool, commit: str | None = None) -> None:
                headers = {"X-Error-Code": code, "Content-Type": "application/json"}
                if commit:
                    headers["X-Repo-Commit"] = commit
                self._send(404, headers, b'{"error": "%s"}' % code.encode(), body)

            def _serve(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                with hub._lock:
                    hub.requests.append((self.command, path))
                    hub.auth_headers.append(self.headers.get("authorization"))
                if cdn:
                    return self._serve_cdn(path, body)
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._send(404, {"Content-Type": "text/plain"}, b"not found", body)
                repo_id, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if repo_id in hub.renamed:
                    new = hub.renamed[repo_id]
                    return self._send(307, {"Location": f"/{new}/resolve/{rev}/{filename}"}, b"", body)
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error("RepoNotFound", body)
                commit = repo.refs.get(rev, rev if rev in repo.commits else None)
                if commit is None:
                    return self._error("RevisionNotFound", body)
                data = repo.commits[commit].get(filename)
                if data is None:
                    return self._error("EntryNotFound", body, commit)
                if hub.faults.get("hub") == "html":
                    page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Log in</body></html>"
                    headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.md5(page).hexdigest()}"',
                               "Content-Type": "text/html; charset=utf-8"}
                    return self._send(200, headers, page, body)
                if filename.endswith(LFS_SUFFIXES):
                    sha = hashlib.sha256(data).hexdigest()
                    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n"
                    headers = {"X-Repo-Commit": commit, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                               "ETag": f'"{git_sha1(pointer.encode())}"', "Location": f"{hub.cdn}/lfs/{sha}"}
                    return self._send(302, headers, b"", body)
                headers = {"X-Repo-Commit": commit, "ETag": f'"{git_sha1(data)}"', "Content-Type": "application/octet-stream"}
                return self._send(200, headers, data, body)

            def _serve_cdn(self, path: str, body: bool) -> None:
                sha = path.rsplit("/", 1)[-1]
                if not path.startswith("/lfs/") or sha not in hub.blobs:
                    return self._send(404, {"Content-Type": "text/plain"}, b"no such blob", body)
                data = hub.tampered.get(sha, hub.blobs[sha])
                return self._send(200, {"Content-Type": "application/octet-stream", "ETag": f'"{sha}"'}, data, body)

        return Handler


# -- models and CLI helpers shared by the hub tests ----------------------------------------------------
def make_model_dir(directory: Path, arch: str = "sdnet18", seed: int = 0, **model_args: object):
    """Save a random ``arch`` (10 classes, CIFAR stem) after one eval forward; returns ``(dir, x, logits)``.

    Step sizes are set to stored values (as in a trained checkpoint: eval uses them as stored), which
    skips the power iteration a fresh model runs on its first forward (seconds on a loaded CPU).
    """
    import torch

    from sdnet_cli.layers import csc_layers
    from sdnet_cli.models.files import ModelConfig, save_model

    torch.manual_seed(seed)
    config = ModelConfig(arch, 10, "cifar", dict(model_args), "digits", [0.3054] * 3, [0.3185] * 3, {"top1": 87.5})
    model = config.build().eval()
    with torch.no_grad():
        for i, layer in enumerate(csc_layers(model)):
            layer.step_size.fill_(0.05 + 0.005 * i)
    model.load_state_dict(model.state_dict())  # step sizes now count as loaded, like a checkpoint's
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(100))  # same x for every seed
    with torch.no_grad():
        logits = model(x)
    save_model(model, directory, config)
    return Path(directory), x, logits

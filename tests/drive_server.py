"""A local stand-in for Google Drive's public download protocol, for tests (127.0.0.1 only).

Two HTTP servers, as on the real service (``SDNET_DRIVE_ENDPOINT`` / ``SDNET_DRIVE_USERCONTENT_ENDPOINT``):

*drive* (drive.google.com):
- ``GET /embeddedfolderview?id=F``: HTML links ``https://drive.google.com/file/d/<id>/view?usp=drive_web``
  whose text is the file name (``embedded=False`` answers 404, as for the older clients' path);
- ``GET /drive/folders/F``: the folder page, ``window['_DRIVE_ivd'] = '<\\x-escaped JSON>'`` holding
  ``[[[id, F, name, mime, …], …], …]``;
- ``GET /uc?export=download&id=X``: ``303`` to ``{usercontent}/download?id=X&export=download``; with
  ``confirm_style = "link"`` or ``"cookie"`` (the older service) it answers itself: the file below
  ``confirm_above`` bytes, else a warning page holding a link ``/uc?export=download&confirm=T&id=X``
  (``"link"``, gdown's case) or setting the cookie ``download_warning_<n>=T`` that must come back with
  ``confirm=T`` (``"cookie"``, RobustBench's case).

*usercontent* (drive.usercontent.google.com): ``GET /download?id=X&export=download`` serves the file
(``Content-Disposition: attachment``, ``ETag``, ``Range`` → ``206`` unless ``If-Range`` names another ETag)
when it is below ``confirm_above`` bytes, else
the virus-scan page ``<form id="download-form" action="https://drive.usercontent.google.com/download">``
with hidden ``id``, ``export``, ``confirm=t``, ``uuid``; the file once ``confirm=t`` and that ``uuid`` come back.

``FakeDrive(single_host=True)``: one server answers for both hosts (``env()`` sets only ``SDNET_DRIVE_ENDPOINT``).

Faults on the file download (``fault = …``; ``None`` heals): ``"rate-limit"`` (the "Too many users have
viewed or downloaded this file recently" page, HTTP 200 text/html; ``"rate-limit-429"``: the same with 429),
``"error-page"`` (an HTML 404 page),
``"html-as-file"`` (an HTML page sent as ``application/octet-stream``), ``"500"``, ``"truncate-once"`` (the
first file answer stops at a third, later ones honour ``Range``), ``"truncate"`` (every answer stops at a
third and ``Range`` is ignored, as by a proxy), ``"stall"`` (headers and a third of the body, then nothing
until healed). ``requests`` records ``(method, path with query, Range header)``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RATE_LIMIT_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
                   b"<p class=\"uc-error-caption\">Sorry, you can't view or download this file at this time.</p>"
                   b"<p class=\"uc-error-subcaption\">Too many users have viewed or downloaded this file recently. "
                   b"Please try accessing the file again later. If the file you are trying to access is particularly "
                   b"large or is shared with many people, it may take up to 24 hours to be able to view or download "
                   b"the file. If you still can't access a file after 24 hours, contact your domain administrator."
                   b"</p></body></html>")
ERROR_PAGE = (b"<!DOCTYPE html><html lang=\"en\"><head><title>Google Drive - Page Not Found</title></head>"
              b"<body><p>Sorry, the file you have requested does not exist.</p></body></html>")


class FakeDrive:
    """In-memory Drive: ``add_folder(folder_id, {name: (file_id, bytes)})``; ``endpoints`` for the environment."""

    def __init__(self, confirm_above: int = 1 << 20, single_host: bool = False) -> None:
        self.single_host = single_host  # one server for both hosts (``env()`` then names only the drive one)
        self.folders: dict[str, dict[str, tuple[str, bytes]]] = {}
        self.files: dict[str, bytes] = {}
        self.confirm_above = confirm_above
        self.embedded = True
        self.confirm_style = "form"
        self.fault: str | None = None
        self.requests: list[tuple[str, str, str | None]] = []
        self._uuids: set[str] = set()
        self._cut_once = False
        self._healed = threading.Event()
        self._lock = threading.Lock()
        self._drive = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(user=False))
        self._user = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(user=True))  # idle when single_host
        for s in (self._drive, self._user):
            s.daemon_threads = True

    @property
    def drive(self) -> str:
        return f"http://127.0.0.1:{self._drive.server_address[1]}"

    @property
    def usercontent(self) -> str:
        return self.drive if self.single_host else f"http://127.0.0.1:{self._user.server_address[1]}"

    def env(self) -> dict[str, str]:
        if self.single_host:
            return {"SDNET_DRIVE_ENDPOINT": self.drive}
        return {"SDNET_DRIVE_ENDPOINT": self.drive, "SDNET_DRIVE_USERCONTENT_ENDPOINT": self.usercontent}

    def start(self) -> "FakeDrive":
        for s in (self._drive, self._user):
            threading.Thread(target=s.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.heal()
        for s in (self._drive, self._user):
            s.shutdown()
            s.server_close()

    def add_folder(self, folder_id: str, files: dict[str, tuple[str, bytes]]) -> None:
        self.folders[folder_id] = dict(files)
        for file_id, data in files.values():
            self.files[file_id] = data

    def set_fault(self, fault: str | None) -> None:
        self.fault, self._cut_once = fault, False
        self._healed.clear() if fault else self._healed.set()

    def heal(self) -> None:
        self.set_fault(None)

    def count(self, contains: str = "") -> int:
        return sum(1 for _, p, _ in self.requests if contains in p)

    # -- pages -------------------------------------------------------------------------------------
    def embedded_page(self, folder_id: str) -> bytes:
        links = "".join(f'<div class="flip-entry"><a href="https://drive.google.com/file/d/{fid}/view?usp=drive_web">'
                        f'<div class="flip-entry-title">{name}</div></a></div>'
                        for name, (fid, _) in self.folders[folder_id].items())
        return f"<!DOCTYPE html><html><head><title>{folder_id}</title></head><body>{links}</body></html>".encode()

    def folder_page(self, folder_id: str) -> bytes:
        items = [[fid, [folder_id], name, "application/octet-stream", 0]
                 for name, (fid, _) in self.folders[folder_id].items()]
        encoded = "".join(c if c.isalnum() or c == " " else f"\\x{ord(c):02x}" for c in json.dumps([items, None]))
        return (f"<!DOCTYPE html><html><head><title>{folder_id} - Google Drive</title></head><body><script nonce=\"x\">"
                f"window['_DRIVE_ivd'] = '{encoded}';if (window['_DRIVE_ivdc']) {{window['_DRIVE_ivdc']();}}"
                "</script></body></html>").encode()

    def confirm_page(self, file_id: str) -> bytes:
        uuid = secrets.token_hex(8)
        self._uuids.add(uuid)
        inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">'
                         for k, v in (("id", file_id), ("export", "download"), ("confirm", "t"), ("uuid", uuid)))
        return ("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>"
                "<p class=\"uc-warning-caption\">Google Drive can't scan this file for viruses.</p>"
                "<form id=\"download-form\" action=\"https://drive.usercontent.google.com/download\" method=\"get\">"
                f"<input type=\"submit\" id=\"uc-download-link\" value=\"Download anyway\">{inputs}</form>"
                "</body></html>").encode()

    # -- HTTP --------------------------------------------------------------------------------------
    def _handler(self, user: bool) -> type[BaseHTTPRequestHandler]:
        drive = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, data: bytes, ctype: str = "text/html; charset=utf-8",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with drive._lock:
                    drive.requests.append(("GET", self.path, self.headers.get("Range")))
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if user or (drive.single_host and parts.path == "/download"):
                    return self._usercontent(parts.path, q)
                if parts.path == "/embeddedfolderview" and drive.embedded and q.get("id") in drive.folders:
                    return self._send(200, drive.embedded_page(q["id"]))
                if parts.path.startswith("/drive/folders/") and parts.path.split("/")[-1] in drive.folders:
                    return self._send(200, drive.folder_page(parts.path.split("/")[-1]))
                if parts.path == "/uc" and q.get("id") and drive.confirm_style != "form":
                    return self._old_uc(q)
                if parts.path == "/uc" and q.get("id"):
                    where = f"{drive.usercontent}/download?id={q['id']}&export=download"
                    return self._send(303, b"", headers={"Location": where})
                return self._send(404, ERROR_PAGE)

            def _old_uc(self, q: dict[str, str]) -> None:
                data = drive.files.get(q["id"])
                if data is None:
                    return self._send(404, ERROR_PAGE)
                confirmed = q.get("confirm") == "T0k3n" and (
                    drive.confirm_style == "link" or "download_warning_18=T0k3n" in (self.headers.get("Cookie") or ""))
                if len(data) <= drive.confirm_above or confirmed:
                    return self._serve(data)
                page = ("<html><head><title>Google Drive - Virus scan warning</title></head><body>"
                        f"<a id=\"uc-download-link\" href=\"/uc?export=download&amp;confirm=T0k3n&amp;id={q['id']}\">"
                        "Download anyway</a></body></html>" if drive.confirm_style == "link" else
                        "<html><head><title>Google Drive - Virus scan warning</title></head><body>Google Drive "
                        "can't scan this file for viruses.</body></html>")
                cookie = {"Set-Cookie": "download_warning_18=T0k3n; Path=/"} if drive.confirm_style == "cookie" else {}
                return self._send(200, page.encode(), headers=cookie)

            def _usercontent(self, path: str, q: dict[str, str]) -> None:
                data = drive.files.get(q.get("id", ""))
                if path != "/download" or data is None:
                    return self._send(404, ERROR_PAGE)
                if len(data) > drive.confirm_above and not (q.get("confirm") == "t" and q.get("uuid") in drive._uuids):
                    return self._send(200, drive.confirm_page(q["id"]))
                self._serve(data)

            def _serve(self, data: bytes) -> None:
                fault = drive.fault
                if fault == "rate-limit":
                    return self._send(200, RATE_LIMIT_PAGE)
                if fault == "rate-limit-429":
                    return self._send(429, RATE_LIMIT_PAGE)
                if fault == "error-page":
                    return self._send(404, ERROR_PAGE)
                if fault == "html-as-file":
                    return self._send(200, ERROR_PAGE, "application/octet-stream")
                if fault == "500":
                    return self._send(500, b"<html><body>Internal error</body></html>")
                self._file(data, fault)

            def _file(self, data: bytes, fault: str | None) -> None:
                rng, etag = self.headers.get("Range"), f'"{hashlib.md5(data).hexdigest()}"'
                if_range = self.headers.get("If-Range")
                start = int(rng[6:].split("-")[0]) if rng and fault != "truncate" and if_range in (None, etag) else 0
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Disposition", 'attachment; filename="model_best.pth.tar"')
                self.send_header("ETag", etag)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = fault in ("truncate", "stall") or (fault == "truncate-once" and not drive._cut_once)
                if not cut:
                    self.wfile.write(body)
                    return
                drive._cut_once = True
                self.wfile.write(body[: len(body) // 3])
                self.wfile.flush()
                if fault == "stall":
                    drive._healed.wait(60)
                self.close_connection = True

        return Handler

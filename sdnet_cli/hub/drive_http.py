"""Bounded HTTP GETs for Google Drive: a page (HTML, size-capped) or a file (resumable), under a ``Transfer``.

Google Drive answers the same URL with either the file or an HTML page (a confirmation form, a rate-limit
notice, an error), so every GET here looks at the answer's ``Content-Type`` before writing a byte:
:func:`get` returns an HTML answer as a :class:`Page` and streams anything else into the ``part`` file,
resuming what it holds with ``Range``. Each attempt runs under :class:`~sdnet_cli.netio.Transfer` (its
connect/read timeout, its count of failed attempts: HTTP 5xx/408/429, a body cut short, a stall, a refused
connection), which raises the one-line :class:`~sdnet_cli.errors.NetworkError` once its bounds are spent.
Redirects are followed (at most urllib's 10); cookies the server sets are sent back within one
:class:`Session` (Drive's older confirmation flow keys on a ``download_warning`` cookie).

A resumed file must be the same file: beside ``part`` a small ``<part>.json`` keeps the total size and the
validator (``ETag``, else ``Last-Modified``) of the answer that started it. A resume sends ``If-Range`` with
that validator (a changed file comes back whole, ``200``, and replaces the part) and checks the ``206``'s
``Content-Range`` (start and total); a part without its ``.json`` is started again.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NetworkError
from ..netio import RETRY_STATUS, RetryAttempt, Transfer, attempt_failed, origin, stream_body

PAGE_LIMIT = 4 << 20
"""Largest HTML page read (bytes): Drive's folder and confirmation pages are a few hundred KB."""
FILE_LIMIT = 4 << 30
"""Largest file accepted (bytes): the official checkpoints are well below."""
USER_AGENT = "sdnet (https://github.com/Delay-Xili/SDNet checkpoints)"
_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+)")


@dataclass(frozen=True)
class Page:
    """An HTML answer: the URL it came from (after redirects), its HTTP status, its text, the cookies it set."""

    url: str
    status: int
    text: str
    cookies: tuple[tuple[str, str], ...] = ()


class Session:
    """One download's HTTP client: urllib with a cookie jar of its own (nothing outlives the pull)."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookies(self) -> tuple[tuple[str, str], ...]:
        return tuple((c.name, c.value or "") for c in self.jar)


@dataclass(frozen=True)
class FileDone:
    """A file answer, complete in the part file: the URL it came from and its ``Content-Disposition``."""

    url: str
    disposition: str


def _meta(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def discard_part(part: Path) -> None:
    """Delete a part file and its ``.json``."""
    part.unlink(missing_ok=True)
    _meta(part).unlink(missing_ok=True)


def _resume_state(part: Path) -> tuple[int, dict[str, Any]]:
    """``(bytes held, {"total", "validator"})`` of a part file; ``(0, {})`` when it cannot be resumed."""
    try:
        meta = json.loads(_meta(part).read_text())
        have = part.stat().st_size
    except (OSError, ValueError):
        return 0, {}
    if not isinstance(meta, dict) or not isinstance(meta.get("total"), (int, type(None))):
        return 0, {}
    return have, meta


def _open(session: Session, url: str, have: int, validator: str | None, transfer: Transfer) -> Any:
    """One GET (``Range``/``If-Range`` when resuming); an HTTP error status is returned as a response, not raised."""
    timeout = transfer.begin("GET", url)
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    if have and validator:
        headers["If-Range"] = validator
    try:
        return session.opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 429 and _is_html(e):  # a rate-limit page: read and named, not retried
            return e
        if e.code in RETRY_STATUS:
            e.close()
            raise attempt_failed(transfer, url, "status", f"HTTP {e.code} from {origin(url)}") from None
        return e
    except (socket.timeout, TimeoutError):
        raise attempt_failed(transfer, url, "stall",
                             f"no data for {transfer.bounds.timeout:g} s from {origin(url)}") from None
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            text = f"no data for {transfer.bounds.timeout:g} s from {origin(url)}"
            raise attempt_failed(transfer, url, "stall", text) from None
        raise attempt_failed(transfer, url, "connect", f"cannot connect to {origin(url)} ({reason})") from None


def _read_page(response: Any, url: str, transfer: Transfer, session: Session) -> Page:
    """The whole HTML body (at most :data:`PAGE_LIMIT` bytes) as a :class:`Page`."""
    try:
        data = response.read(PAGE_LIMIT + 1)
    except (socket.timeout, TimeoutError):
        raise attempt_failed(transfer, url, "stall",
                             f"no data for {transfer.bounds.timeout:g} s from {origin(url)}") from None
    except (http.client.IncompleteRead, ConnectionError, OSError) as e:
        raise attempt_failed(transfer, url, "truncated",
                             f"page cut short by {origin(url)} ({type(e).__name__})") from None
    if len(data) > PAGE_LIMIT:
        raise NetworkError(f"{origin(url)} sent an HTML page over {PAGE_LIMIT >> 20} MiB for {transfer.what}; "
                           "it is not Google Drive's protocol (check SDNET_DRIVE_ENDPOINT)")
    transfer.received("GET", url, len(data), len(data))
    status = getattr(response, "status", None) or response.getcode()
    return Page(url=response.geturl() or url, status=int(status), text=data.decode("utf-8", errors="replace"),
                cookies=session.cookies())


def _start(response: Any, part: Path, have: int, meta: dict[str, Any], url: str, transfer: Transfer) -> int:
    """Where this answer's body goes in ``part``: ``have`` for a matching ``206``, else 0 (a new ``.json``)."""
    if have and response.status == 206:
        m = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range") or "")
        if m and int(m.group(1)) == have and meta.get("total") in (None, int(m.group(2))):
            return have
        discard_part(part)
        raise attempt_failed(transfer, url, "truncated",
                             f"{origin(url)} answered a resume with another range or file size")
    length = response.headers.get("Content-Length")
    validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
    total = int(length) if length is not None and length.isdigit() else None
    _meta(part).write_text(json.dumps({"total": total, "validator": validator}))
    return 0


def _read_file(response: Any, part: Path, have: int, url: str, transfer: Transfer) -> None:
    """Write the body into ``part`` from byte ``have``; raises unless complete."""
    length = response.headers.get("Content-Length")
    total = have + int(length) if length is not None and length.isdigit() else None
    if total is not None and total > FILE_LIMIT:
        raise NetworkError(f"{origin(url)} announces {total} bytes for {transfer.what}, over the "
                           f"{FILE_LIMIT >> 30} GiB an official checkpoint can be; refused")
    with open(part, "r+b" if have else "wb") as f:
        f.seek(have)
        f.truncate()
        stream_body(response, f, have, total, url, transfer, _CHUNK, limit=FILE_LIMIT)


def _is_html(response: Any) -> bool:
    return "html" in (response.headers.get("Content-Type") or "").lower()


def get(session: Session, url: str, part: Path, transfer: Transfer) -> Page | FileDone:
    """GET ``url``: an HTML answer (any status) as a :class:`Page`; a file streamed into ``part`` (resumed).

    A non-HTML answer with an error status raises :class:`NetworkError` naming it. Attempts are retried
    with what ``part`` holds as ``Range`` until ``transfer``'s bounds are spent.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    while True:
        have, meta = _resume_state(part)
        try:
            response = _open(session, url, have, meta.get("validator"), transfer)
            with response:
                status = int(getattr(response, "status", None) or response.getcode())
                if _is_html(response):
                    return _read_page(response, url, transfer, session)
                if status == 416 and have and have == meta.get("total"):
                    return FileDone(url, response.headers.get("Content-Disposition") or "")
                if status >= 400:
                    discard_part(part)
                    raise NetworkError(f"downloading {transfer.what} failed: HTTP {status} from {origin(url)}")
                start = _start(response, part, have, meta, url, transfer)
                _read_file(response, part, start, url, transfer)
                return FileDone(response.geturl() or url, response.headers.get("Content-Disposition") or "")
        except RetryAttempt:
            time.sleep(min(1.0, max(transfer.bounds.timeout - transfer.idle(), 0.0)))

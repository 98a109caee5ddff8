"""Bounded downloads: a time bound on no progress, a bounded number of attempts, one line naming what went wrong.

Every download (``sdnet pull-weights`` through huggingface_hub, the CIFAR-C archive through urllib) runs
under one :class:`Transfer`: it hands each attempt its connect/read timeout — what is left of
``NetBounds.timeout`` seconds since the last new byte — and counts the failed attempts of each request
(an HTTP 5xx/408/429, a body cut short, a stall, a refused connection) until ``NetBounds.retries`` more
attempts were made without progress. Then :meth:`Transfer.error` gives a :class:`~sdnet_cli.errors.NetworkError`
whose one line says what the server did ("HTTP 500 from …", "truncated at N of M bytes …", "no data for
N s …") and what to do. An attempt that brings new bytes resets the count, so a slow but moving
transfer is never cut.

For huggingface_hub, :func:`hf_bounded` installs (for the length of one call, then restores) its timeout
knobs ``constants.HF_HUB_DOWNLOAD_TIMEOUT`` / ``HF_HUB_ETAG_TIMEOUT`` and a client whose transport goes
through the :class:`Transfer` (``huggingface_hub.set_client_factory``, the library's own hook).
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from .errors import NetworkError, UsageError

DEFAULT_TIMEOUT = 60.0
"""Seconds without a new byte after which a download fails (connect, each read, and across retries)."""
DEFAULT_RETRIES = 2
"""Further attempts of a request after a failed one that brought no new bytes."""
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})

Progress = Callable[[str, int, "int | None"], None]
"""``progress(what, bytes done, total bytes or None)``."""

_ADVICE = {
    "status": "the server failed; try again later",
    "truncated": "the server or a proxy cut the transfer short; try again later (a partial file is never used)",
    "stall": "the server stopped sending; try again later, or allow longer with --timeout SECONDS",
    "connect": "check the network connection and the address (HF_ENDPOINT for the Hub)",
}


@dataclass(frozen=True)
class NetBounds:
    """``timeout``: seconds without progress before giving up (> 0, finite); ``retries``: attempts after a failed one."""

    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES

    def __post_init__(self) -> None:
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise UsageError(f"--timeout must be a finite number of seconds > 0, got {t!r}")
        r = self.retries
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise UsageError(f"retries must be an integer >= 0, got {r!r}")


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (what a message names as the server)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Transfer:
    """The attempts of one download: timeouts to use, progress, and when and why to give up."""

    bounds: NetBounds
    what: str
    progress: Progress | None = None
    clock: Callable[[], float] = time.monotonic
    attempts: int = 0
    problem: tuple[str, str] | None = None
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)
    _high: dict[tuple[str, str], int] = field(default_factory=dict)
    _last: float = 0.0
    _start: float = 0.0

    def __post_init__(self) -> None:
        self._last = self._start = self.clock()

    def idle(self) -> float:
        """Seconds since the last new byte (or since the transfer started)."""
        return self.clock() - self._last

    def begin(self, method: str, url: str) -> float:
        """Start an attempt of ``method url``; returns its connect/read timeout, or raises the error once spent."""
        key = (method, url)
        if self.idle() >= self.bounds.timeout:
            if self.problem is None:
                self.problem = ("stall", f"no data for {self.bounds.timeout:g} s from {origin(url)}")
            raise self.error()
        if self._failures.get(key, 0) > self.bounds.retries:
            raise self.error()
        self.attempts += 1
        return max(self.bounds.timeout - self.idle(), 0.05)

    def received(self, method: str, url: str, offset: int, total: int | None) -> None:
        """The body of ``method url`` reached byte ``offset`` (of ``total``); new bytes reset the failures."""
        key = (method, url)
        if offset > self._high.get(key, 0):
            self._high[key] = offset
            self._failures[key] = 0
            self._last = self.clock()
        if self.progress is not None:
            self.progress(self.what, offset, total)

    def failed(self, method: str, url: str, kind: str, text: str) -> bool:
        """Record a failed attempt (``kind`` in status/truncated/stall/connect); ``True`` when no attempt is left."""
        key = (method, url)
        self._failures[key] = self._failures.get(key, 0) + 1
        self.problem = (kind, text)
        return self._failures[key] > self.bounds.retries or self.idle() >= self.bounds.timeout

    def error(self) -> NetworkError:
        """The one-line failure: what the server did, how long it was tried, what to do."""
        kind, text = self.problem or ("stall", f"no data for {self.bounds.timeout:g} s")
        tries = f"{self.attempts} request{'s' if self.attempts != 1 else ''}"
        return NetworkError(f"downloading {self.what} failed: {text} ({tries} in {self.clock() - self._start:.0f} s); "
                            f"{_ADVICE[kind]}")


# -- huggingface_hub ---------------------------------------------------------------------------------
def _http_module() -> Any:
    """The httpx-compatible module huggingface_hub uses (``httpx2`` in 2.x, ``httpx`` in 1.x)."""
    try:
        import httpx2 as hx
    except ImportError:
        import httpx as hx  # type: ignore[no-redef]
    return hx


def _range_start(headers: Any) -> int:
    value = headers.get("range") or ""
    if value.startswith("bytes=") and value[6:].split("-")[0].isdigit():
        return int(value[6:].split("-")[0])
    return 0


def bounded_transport(inner: Any, transfer: Transfer) -> Any:
    """An httpx transport that runs every request of ``inner`` under ``transfer`` (timeouts, attempts, progress)."""
    hx = _http_module()

    class Body(hx.SyncByteStream):
        def __init__(self, stream: Any, method: str, url: str, start: int, total: int | None) -> None:
            self.stream, self.method, self.url, self.start, self.total = stream, method, url, start, total

        def __iter__(self) -> Iterator[bytes]:
            done = self.start
            try:
                for chunk in self.stream:
                    done += len(chunk)
                    transfer.received(self.method, self.url, done, self.total)
                    yield chunk
            except hx.TimeoutException:
                text = f"no data for {transfer.bounds.timeout:g} s from {origin(self.url)} after {done} bytes"
                if transfer.failed(self.method, self.url, "stall", text):
                    raise transfer.error() from None
                raise
            except (hx.RemoteProtocolError, hx.ReadError):
                of = f" of {self.total}" if self.total is not None else ""
                text = f"truncated at {done}{of} bytes by {origin(self.url)}"
                if transfer.failed(self.method, self.url, "truncated", text):
                    raise transfer.error() from None
                raise

        def close(self) -> None:
            self.stream.close()

    class Transport(hx.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            method, url = request.method, str(request.url)
            t = transfer.begin(method, url)
            request.extensions["timeout"] = {"connect": t, "read": t, "write": t, "pool": t}
            try:
                response = inner.handle_request(request)
            except hx.TimeoutException:
                if transfer.failed(method, url, "stall", f"no data for {transfer.bounds.timeout:g} s from {origin(url)}"):
                    raise transfer.error() from None
                raise
            except hx.TransportError as e:
                if transfer.failed(method, url, "connect", f"cannot connect to {origin(url)} ({e})"):
                    raise transfer.error() from None
                raise
            if response.status_code in RETRY_STATUS:
                if transfer.failed(method, url, "status", f"HTTP {response.status_code} from {origin(url)}"):
                    response.close()
                    raise transfer.error()
                return response
            start = _range_start(request.headers) if response.status_code == 206 else 0
            length = response.headers.get("content-length")
            total = start + int(length) if length and length.isdigit() else None
            return hx.Response(response.status_code, headers=response.headers, request=request,
                               stream=Body(response.stream, method, url, start, total), extensions=response.extensions)

        def close(self) -> None:
            inner.close()

    return Transport()


_HF_LOCK = threading.Lock()


@contextmanager
def hf_bounded(transfer: Transfer) -> Iterator[None]:
    """Run huggingface_hub calls under ``transfer``: its timeout knobs and a bounded client, restored afterwards."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    hx = _http_module()
    previous = _http._GLOBAL_CLIENT_FACTORY

    def factory() -> Any:
        client = previous()
        client._transport = bounded_transport(getattr(client, "_transport", None) or hx.HTTPTransport(), transfer)
        return client

    with _HF_LOCK:
        knobs = constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT
        constants.HF_HUB_DOWNLOAD_TIMEOUT = constants.HF_HUB_ETAG_TIMEOUT = transfer.bounds.timeout
        _http.set_client_factory(factory)
        try:
            yield
        finally:
            _http.set_client_factory(previous)
            constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT = knobs

"""Bounded downloads: a time bound on no progress, a bounded number of attempts, one line naming what went wrong.

Every download (``sdnet pull-weights`` through huggingface_hub, the CIFAR-C archive through urllib) runs
under one :class:`Transfer`: it hands each attempt its connect/read timeout — what is left of
``NetBounds.timeout`` seconds since the last new byte — and counts the failed attempts of each request
(an HTTP 5xx/408/429, a body cut short, a stall, a refused connection) until ``NetBounds.retries`` more
attempts were made without progress. Then :meth:`Transfer.error` gives a :class:`~sdnet_cli.errors.NetworkError`
whose one line says what the server did ("HTTP 500 from …", "truncated at N of M bytes …", "no data for
N s …") and what to do. An attempt that brings new bytes resets the count, so a slow but moving
transfer is never cut.

Plain HTTP (the CIFAR-C archive) goes through :func:`fetch_to_file` (urllib, resumable); huggingface_hub
through :func:`sdnet_cli.hub.bounded.hf_bounded`, which puts the library's own client under the same
:class:`Transfer`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable
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
    "stall": "the server stopped sending; try again later, or allow longer with {longer}",
    "connect": "check the network connection and the address (HF_ENDPOINT for the Hub, SDNET_CIFAR_URL or "
               "SDNET_CIFAR_C_URL for a dataset mirror)",
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
    longer: str = "--timeout SECONDS"
    """How the user allows a longer wait (named in the advice after a stall)."""
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
                            f"{_ADVICE[kind].format(longer=self.longer)}")


# -- plain HTTP (urllib) -----------------------------------------------------------------------------
class RetryAttempt(Exception):
    """This attempt failed but the transfer has attempts left."""


def attempt_failed(transfer: Transfer, url: str, kind: str, text: str) -> RetryAttempt:
    """Record a failed attempt: raise the transfer's one-line error when its bounds are spent, else return the
    :class:`RetryAttempt` to raise."""
    if transfer.failed("GET", url, kind, text):
        raise transfer.error() from None
    return RetryAttempt()


def stream_body(response: Any, f: Any, done: int, total: int | None, url: str, transfer: Transfer,
                chunk: int = 1 << 20, limit: int | None = None) -> int:
    """Append ``response``'s body to the open file ``f`` (holding ``done`` bytes); returns the bytes it then
    holds. A stall, a body cut short of ``total`` bytes, or one over ``limit`` bytes raise."""
    import http.client
    import socket

    try:
        while block := response.read(chunk):
            f.write(block)
            done += len(block)
            if limit is not None and done > limit:
                raise NetworkError(f"{origin(url)} sent over {limit >> 30} GiB for {transfer.what}; refused")
            transfer.received("GET", url, done, total)
    except (socket.timeout, TimeoutError):
        raise attempt_failed(transfer, url, "stall", f"no data for {transfer.bounds.timeout:g} s from "
                             f"{origin(url)} after {done} bytes") from None
    except (http.client.IncompleteRead, ConnectionError, OSError):
        pass  # judged below by the byte count
    finally:
        f.flush()
    if total is not None and done < total:
        raise attempt_failed(transfer, url, "truncated", f"truncated at {done} of {total} bytes by {origin(url)}")
    return done


def _open(url: str, have: int, timeout: float, transfer: Transfer) -> Any:
    """One GET (with ``Range`` when resuming); ``None`` when the server says nothing is left (416)."""
    import socket
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            return None
        if e.code in RETRY_STATUS:
            raise attempt_failed(transfer, url, "status", f"HTTP {e.code} from {origin(url)}") from None
        raise NetworkError(f"downloading {transfer.what} failed: HTTP {e.code} ({e.reason}) from {origin(url)}; "
                           "check the address") from None
    except (socket.timeout, TimeoutError):
        raise attempt_failed(transfer, url, "stall",
                             f"no data for {transfer.bounds.timeout:g} s from {origin(url)}") from None
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", e)
        kind = "stall" if isinstance(reason, (socket.timeout, TimeoutError)) else "connect"
        text = (f"no data for {transfer.bounds.timeout:g} s from {origin(url)}" if kind == "stall"
                else f"cannot connect to {origin(url)} ({reason})")
        raise attempt_failed(transfer, url, kind, text) from None


def _read_body(response: Any, part: Any, have: int, url: str, transfer: Transfer, chunk: int) -> bool:
    """Append the body to ``part`` (restarting it when the server ignored ``Range``); ``True`` when complete."""
    if have and response.status != 206:
        part.seek(0)
        part.truncate()
        have = 0
    length = response.headers.get("Content-Length")
    total = have + int(length) if length is not None and length.isdigit() else None
    stream_body(response, part, have, total, url, transfer, chunk)
    return True


def fetch_to_file(url: str, part: "str | Any", transfer: Transfer, chunk: int = 1 << 20) -> None:
    """Download ``url`` into the file ``part``, resuming what it holds (HTTP ``Range``), under ``transfer``.

    Returns once the server's announced length is reached (or a body of unknown length ended); raises the
    transfer's :class:`~sdnet_cli.errors.NetworkError` when its bounds are spent. ``part`` keeps the bytes
    received so far, so a later call resumes.
    """
    from pathlib import Path

    path = Path(part)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    while True:
        have = path.stat().st_size
        timeout = transfer.begin("GET", url)
        try:
            response = _open(url, have, timeout, transfer)
            if response is None:
                return
            with response, open(path, "r+b") as f:
                f.seek(have)
                if _read_body(response, f, have, url, transfer, chunk):
                    return
        except RetryAttempt:
            time.sleep(min(1.0, max(transfer.bounds.timeout - transfer.idle(), 0.0)))

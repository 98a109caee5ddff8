"""huggingface_hub under a :class:`~sdnet_cli.netio.Transfer`: bounded time, bounded attempts, one line.

:func:`hf_bounded` installs, for the length of one call and then restores: the library's timeout knobs
``constants.HF_HUB_DOWNLOAD_TIMEOUT`` / ``HF_HUB_ETAG_TIMEOUT``; a client (``set_client_factory``, the
library's own hook) whose transport runs every request through the transfer — its connect/read timeout,
its attempt count, byte progress, and the diagnosis of a 5xx, a cut body, a stall or a refused
connection; and a quiet ``huggingface_hub`` logger (its per-retry warnings would repeat what the one
line says). huggingface_hub's own retries still happen, but the transfer ends them once its bounds are
spent by raising :class:`~sdnet_cli.errors.NetworkError`, which the library does not catch.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from ..netio import RETRY_STATUS, Transfer, origin


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


def _watched_body(stream: Any, method: str, url: str, start: int, total: int | None, transfer: Transfer) -> Any:
    """The response body ``stream`` as an httpx byte stream that reports progress, stalls and cuts to ``transfer``."""
    hx = _http_module()

    class Body(hx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            done = start
            try:
                for chunk in stream:
                    done += len(chunk)
                    transfer.received(method, url, done, total)
                    yield chunk
            except hx.TimeoutException:
                text = f"no data for {transfer.bounds.timeout:g} s from {origin(url)} after {done} bytes"
                if transfer.failed(method, url, "stall", text):
                    raise transfer.error() from None
                raise
            except (hx.RemoteProtocolError, hx.ReadError):
                of = f" of {total}" if total is not None else ""
                if transfer.failed(method, url, "truncated", f"truncated at {done}{of} bytes by {origin(url)}"):
                    raise transfer.error() from None
                raise

        def close(self) -> None:
            stream.close()

    return Body()


def bounded_transport(inner: Any, transfer: Transfer) -> Any:
    """An httpx transport that runs every request of ``inner`` under ``transfer`` (timeouts, attempts, progress)."""
    hx = _http_module()

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
            body = _watched_body(response.stream, method, url, start, total, transfer)
            return hx.Response(response.status_code, headers=response.headers, request=request, stream=body,
                               extensions=response.extensions)

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

    log = logging.getLogger("huggingface_hub")  # its per-retry warnings: the transfer's one line says it all
    with _HF_LOCK:
        knobs = constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT, log.level
        constants.HF_HUB_DOWNLOAD_TIMEOUT = constants.HF_HUB_ETAG_TIMEOUT = transfer.bounds.timeout
        log.setLevel(logging.ERROR)
        _http.set_client_factory(factory)
        try:
            yield
        finally:
            _http.set_client_factory(previous)
            constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT, level = knobs
            log.setLevel(level)

"""Integrity of files in the Hub cache: by hash (the zoo's pin, else the server's ETag) and by content.

The cache names every blob by the server's ETag: the sha256 of the content for LFS files
(``X-Linked-Etag``), the git blob sha1 for small files. A mismatch deletes the blob and the snapshot link
(no usable file is left) and raises a ``UsageError`` saying so. An ETag that is neither (a proxy or a
server answering an HTML page) proves nothing, so every pull also checks the content
(:func:`verify_model_content`): the safetensors header (:func:`check_safetensors_header`), the
``config.json`` schema, and every tensor as a load checks it (readable, floating tensors finite). A failure
deletes the pulled files' blobs and snapshot links before the error is raised. (Whether the tensors fit the
architecture is checked where the model is built: ``load_model_dir``.)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError
from ..fsio import file_digest
from ..models.files import WEIGHTS_NAME, read_config, read_weights
from ..models.schema import check_weights

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")


def git_blob_sha1(path: str | Path) -> str:
    """Git's object id of a file: ``sha1(b"blob <size>\\0" + content)`` (the Hub's ETag of non-LFS files)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _discard(pointer: str) -> None:
    """Delete a cached file's blob and its snapshot link, so the cache holds no usable copy."""
    blob = os.path.realpath(pointer)
    for p in (pointer, blob):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def verify_cached_file(pointer: str, expected_sha256: str | None, what: str) -> str:
    """Check a file of the Hub cache; returns its sha256.

    Checked against ``expected_sha256`` (the zoo pin) when given, else against the blob name the cache
    took from the server's ETag (sha256 for LFS files, git sha1 otherwise). Raises ``UsageError`` after
    deleting the blob and the snapshot link on a mismatch.
    """
    digest = file_digest(pointer, "sha256")
    etag = os.path.basename(os.path.realpath(pointer))
    if expected_sha256 is not None:
        expected, got, kind = expected_sha256, digest, "the zoo's pinned sha256"
    elif _HEX64.fullmatch(etag):
        expected, got, kind = etag, digest, "the sha256 the Hub announced (LFS ETag)"
    elif _HEX40.fullmatch(etag):
        expected, got, kind = etag, git_blob_sha1(pointer), "the git sha1 the Hub announced (ETag)"
    else:
        return digest
    if got != expected:
        _discard(pointer)
        raise UsageError(
            f"{what} failed verification: its hash {got[:16]}… differs from {kind} {expected[:16]}…; "
            "the corrupted download was deleted from the cache — pull again, and if it persists the repo or a proxy serves a bad file"
        )
    return digest


SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
                      "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
"""Element size in bytes of each safetensors dtype."""
_HEADER_LIMIT = 100 << 20  # the safetensors library's own bound on the header


def _looks_like(head: bytes) -> str:
    text = head.lstrip()[:16]
    if text[:1] == b"<":
        return f"it starts with {text!r}: an HTML page, not weights"
    return f"it starts with {head[:16]!r}"


def _bad_tensor(name: str, info: Any, data_len: int) -> str | None:
    """Why one header entry is invalid (``None`` when it is fine)."""
    if not isinstance(info, dict) or info.get("dtype") not in SAFETENSORS_DTYPES:
        return f"tensor {name!r} has no known dtype"
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return f"tensor {name!r} has no valid shape"
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        return f"tensor {name!r} has no valid data_offsets"
    start, end = offsets
    if not 0 <= start <= end <= data_len or end - start != math.prod(shape) * SAFETENSORS_DTYPES[info["dtype"]]:
        return f"tensor {name!r} lies outside the file or has the wrong byte count"
    return None


def check_safetensors_header(path: str | Path, what: str) -> dict[str, Any]:
    """Parse and check a safetensors header: ``u64 length`` + JSON of ``{name: {dtype, shape, data_offsets}}``.

    Every tensor's bytes must lie inside the file and match ``prod(shape) * itemsize``. Returns the header;
    raises ``UsageError`` naming what is wrong (an HTML page is named as such).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        if not 2 <= n <= min(size - 8, _HEADER_LIMIT):
            raise UsageError(f"{what} is not a safetensors file ({size} bytes; {_looks_like(head + f.read(8))})")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{what} is not a safetensors file: its header is not JSON ({_looks_like(head)})") from None
    if not isinstance(header, dict):
        raise UsageError(f"{what} is not a safetensors file: its header is not an object")
    for name, info in header.items():
        problem = None if name == "__metadata__" else _bad_tensor(name, info, size - 8 - n)
        if problem:
            raise UsageError(f"{what} is not a valid safetensors file: {problem}")
    return header


def verify_model_content(directory: str | Path, label: str, pointers: Iterable[str]) -> None:
    """Check a pulled model directory by content: safetensors header, config.json schema, tensors finite.

    On failure the files ``pointers`` (snapshot links) and their blobs are deleted, then a ``UsageError``
    names the problem: nothing usable is left in the cache.
    """
    directory = Path(directory)
    try:
        check_safetensors_header(directory / WEIGHTS_NAME, f"{label}/{WEIGHTS_NAME}")
        read_config(directory)
        tensors = read_weights(directory / WEIGHTS_NAME)
        check_weights(tensors, tensors, f"{label}/{WEIGHTS_NAME}")
    except UsageError as e:
        for pointer in pointers:
            _discard(pointer)
        raise UsageError(f"{label} failed the content check ({str(e).splitlines()[0][:300]}); the download was "
                         "deleted from the cache: the repo or a proxy serves something that is not an sdnet model "
                         "(check the repo and HF_ENDPOINT)") from None

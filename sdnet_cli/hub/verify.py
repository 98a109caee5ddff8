"""Integrity of files in the Hub cache: the zoo's pinned sha256, else the hash the server announced (its ETag).

The cache names every blob by the server's ETag: the sha256 of the content for LFS files
(``X-Linked-Etag``), the git blob sha1 for small files. A mismatch deletes the blob and the snapshot link
(no usable file is left) and raises a ``UsageError`` saying so.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import UsageError
from ..models.files import file_digest

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

"""``pull_weights``: a zoo name or ``org/repo[@rev]`` → a verified model directory in the Hub cache.

Downloads go through the real ``huggingface_hub`` client (``hf_hub_download``: its cache layout,
``HF_TOKEN``, progress bars). ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` / ``HF_HOME`` are
read from the environment at *call* time and passed explicitly (``endpoint=``, ``local_files_only=``,
``cache_dir=``), because ``huggingface_hub`` freezes them into ``huggingface_hub.constants`` when it is
first imported: setting them later (a test, a notebook) still takes effect.

Integrity: ``model.safetensors`` must match the zoo's pinned sha256, or else the hash the server
advertised for it — the cache names every blob by the server's ETag: the sha256 of the content for LFS
files (``X-Linked-Etag``), the git blob sha1 for small files. A mismatch deletes the blob and the
snapshot link (no usable file is left) and raises ``ValueError``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..models.files import CONFIG_NAME, WEIGHTS_NAME, file_digest
from .zoo import ZooEntry, get_entry
from ..errors import MissingFileError, UsageError

_REPO_SPEC = re.compile(r"(?P<repo>[^@\s]+/[^@\s]+?)(?:@(?P<rev>[^@\s]+))?")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_TRUE = {"1", "on", "yes", "true"}


@dataclass
class PullResult:
    """Where a pulled model lives: ``path`` is the model directory (a snapshot in the Hub cache)."""

    name: str
    repo_id: str
    revision: str
    path: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_source(src: str) -> tuple[ZooEntry | None, str, str | None]:
    """``(zoo entry or None, repo_id, revision or None)`` of a zoo name or ``ORG/NAME[@REVISION]``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    src = str(src).strip()
    if src.startswith(("./", "../", "/", "~", ".\\")) or os.sep != "/" and os.sep in src:
        raise MissingFileError(f"{src} not found: no such model directory")
    if "/" not in src:
        try:
            entry = get_entry(src)
        except ValueError as e:
            raise UsageError(f"{e} (no local model directory {src!r} exists either)") from None
        return entry, entry.repo_id, entry.revision
    m = _REPO_SPEC.fullmatch(src)
    if m is None or src.count("/") != 1:
        raise UsageError(f"malformed Hub repo {src!r}: expected ORG/NAME or ORG/NAME@REVISION (e.g. sdnet/sdnet18-cifar10@main)")
    try:
        validate_repo_id(m["repo"])
    except HFValidationError as e:
        raise UsageError(f"malformed Hub repo id {m['repo']!r}: {str(e).splitlines()[0]}") from None
    return None, m["repo"], m["rev"]


def _endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def default_cache_dir() -> str | None:
    """``HF_HUB_CACHE`` (else ``$HF_HOME/hub``) as set now; ``None`` lets huggingface_hub use its default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` set now (environment) or when ``huggingface_hub`` was imported (it then blocks all HTTP)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "")
    return env.strip().lower() in _TRUE or bool(constants.HF_HUB_OFFLINE)




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
    took from the server's ETag (sha256 for LFS files, git sha1 otherwise). Raises ``ValueError`` after
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


class _QuietBar:
    """Stand-in progress bar class that shows nothing (``progress=False``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> "_QuietBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def update(self, n: float | None = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _download(repo_id: str, filename: str, revision: str | None, cache_dir: str | None, token: str | bool | None,
              offline: bool, progress: bool, label: str) -> str:
    """``hf_hub_download`` with its errors turned into one clear sentence each."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RemoteEntryNotFoundError,
        RepositoryNotFoundError, RevisionNotFoundError,
    )

    endpoint = _endpoint()
    rev = revision or "main"
    try:
        return hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache_dir, endpoint=endpoint, token=token,
            local_files_only=offline, library_name="sdnet", library_version=__version__,
            tqdm_class=None if progress else _QuietBar,  # type: ignore[arg-type]
        )
    except GatedRepoError:
        raise UsageError(f"{repo_id} is gated on {endpoint}: accept its terms on the Hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        local = f"; no local directory {repo_id} exists either" if Path(repo_id.split("/")[0]).is_dir() else ""
        raise UsageError(f"Hub repo {repo_id} not found on {endpoint} (check the name; for a private repo set HF_TOKEN "
                         f"or run 'hf auth login'){local}") from None
    except RevisionNotFoundError:
        raise UsageError(f"revision {rev!r} not found in Hub repo {repo_id} (use a branch, tag or commit of the repo)") from None
    except RemoteEntryNotFoundError:
        raise UsageError(f"{repo_id}@{rev} has no {filename}: not an sdnet model repo "
                         f"(expected {WEIGHTS_NAME} and {CONFIG_NAME}, as written by 'sdnet export')") from None
    except LocalEntryNotFoundError:
        if offline:
            raise MissingFileError(
                f"{label} is not in the Hub cache{f' {cache_dir}' if cache_dir else ''} and HF_HUB_OFFLINE is set: "
                f"run 'sdnet pull-weights {label}' once with network access (unset HF_HUB_OFFLINE), "
                "or point --cache-dir / HF_HUB_CACHE at a cache that holds it"
            ) from None
        raise ConnectionError(f"cannot reach {endpoint} to download {label} and it is not cached: check the network "
                              "(or HF_ENDPOINT), or set HF_HUB_OFFLINE=1 to use only cached models") from None
    except HfHubHTTPError as e:
        raise ConnectionError(f"the Hub at {endpoint} refused {repo_id}/{filename}: {str(e).splitlines()[0]}") from None


def pull_weights(
    name_or_repo: str,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    *,
    token: str | bool | None = None,
    progress: bool = True,
) -> PullResult:
    """Download (or find in the cache) a zoo model or a Hub repo; verify it; return its model directory.

    ``name_or_repo``: a zoo name (``sdnet18-cifar10``) or ``ORG/NAME[@REVISION]``. ``revision`` overrides
    ``@REVISION`` (they must agree when both are given). Zoo entries download their pinned revision and
    check the pinned sha256. With ``HF_HUB_OFFLINE=1`` only the cache is used.
    """
    entry, repo_id, spec_rev = parse_source(name_or_repo)
    if entry is not None and not entry.published:
        raise UsageError(
            f"zoo model {entry.name} is not published on the Hub yet (planned repo {entry.repo_id}); "
            f"convert the official checkpoint yourself: {entry.export_command()}"
        )
    if revision is not None and spec_rev is not None and revision != spec_rev and entry is None:
        raise UsageError(f"two revisions given: {spec_rev!r} in {name_or_repo!r} and {revision!r}; pass one")
    rev = revision or spec_rev
    label = entry.name if entry is not None else (f"{repo_id}@{rev}" if rev else repo_id)
    cache = str(cache_dir) if cache_dir is not None else default_cache_dir()
    offline = is_offline()

    weights = _download(repo_id, entry.filename if entry else WEIGHTS_NAME, rev, cache, token, offline, progress, label)
    digest = verify_cached_file(weights, entry.sha256 if entry and rev == entry.revision else None,
                                f"{label}/{WEIGHTS_NAME}")
    config = _download(repo_id, CONFIG_NAME, rev, cache, token, offline, progress, label)
    verify_cached_file(config, None, f"{label}/{CONFIG_NAME}")
    snapshot = Path(weights).parent
    if Path(config).parent != snapshot:  # the branch moved between the two downloads
        raise ConnectionError(f"{repo_id} changed while downloading; pull again")
    return PullResult(name=entry.name if entry else repo_id, repo_id=repo_id, revision=snapshot.name,
                      path=str(snapshot), sha256=digest)

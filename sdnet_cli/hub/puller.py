"""``hub.pull(PullOptions) -> PullResult``: a zoo name or ``org/repo[@rev]`` → a verified model directory in the Hub cache.

Downloads go through the real ``huggingface_hub`` client (``hf_hub_download``: its cache layout,
``HF_TOKEN``). ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` / ``HF_HOME`` are read from the
environment at *call* time and passed explicitly (``endpoint=``, ``local_files_only=``, ``cache_dir=``),
because ``huggingface_hub`` freezes them into ``huggingface_hub.constants`` when it is first imported.

Every file is fetched under :func:`sdnet_cli.hub.bounded.hf_bounded`: at most ``timeout`` seconds without a new
byte and ``retries`` more attempts of a failed request, then one line naming what the server did
(``NetworkError``, exit 1). Integrity: :mod:`~sdnet_cli.hub.verify` (pinned or announced hash, then the
content: safetensors header, config.json schema, weights; a failure leaves nothing usable in the cache).

A zoo entry not yet pinned on the Hub comes from its official Google Drive folder
(:func:`sdnet_cli.hub.drive_pull.pull_official`); once pinned, the Hub revision takes precedence.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import MissingFileError, NetworkError, UsageError
from ..models.files import CONFIG_NAME, WEIGHTS_NAME
from ..netio import DEFAULT_RETRIES, DEFAULT_TIMEOUT, NetBounds, Progress, Transfer, origin
from .bounded import hf_bounded
from .verify import verify_cached_file, verify_model_content
from .zoo import ZooEntry, get_entry

_REPO_SPEC = re.compile(r"(?P<repo>[^@\s]+/[^@\s]+?)(?:@(?P<rev>[^@\s]+))?")
_TRUE = {"1", "on", "yes", "true"}


def parse_source(src: str) -> tuple[ZooEntry | None, str, str | None]:
    """``(zoo entry or None, repo_id, revision or None)`` of a zoo name or ``ORG/NAME[@REVISION]``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    src = str(src).strip()
    if src.startswith(("./", "../", "/", "~", ".\\")) or os.sep != "/" and os.sep in src:
        raise MissingFileError(f"{src} not found: no such model directory")
    if "/" not in src:
        try:
            entry = get_entry(src)
        except UsageError as e:
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


@dataclass(frozen=True)
class PullOptions:
    """What to pull: ``source`` (zoo name or ``ORG/NAME[@REV]``), where to cache it, and the network bounds.

    Validated at construction: the source's form (and that a zoo entry is published), one revision,
    ``cache_dir`` not a file, ``timeout`` > 0 seconds, ``retries`` ≥ 0. Nothing is read or written.
    """

    source: str
    cache_dir: Path | None = None
    revision: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    token: str | bool | None = None

    def __post_init__(self) -> None:
        NetBounds(self.timeout, self.retries)
        entry, _, spec_rev = parse_source(self.source)
        if entry is not None and entry.source == "none":
            raise UsageError(
                f"zoo model {entry.name} is not published on the Hub yet (planned repo {entry.repo_id}) and the "
                f"official README links no Google Drive folder for it; convert the official checkpoint yourself: "
                f"{entry.export_command()}")
        if entry is not None and entry.source == "drive" and self.revision is not None:
            raise UsageError(f"--revision applies to Hub repos; zoo model {entry.name} comes from its official "
                             "Google Drive folder (not published on the Hub yet)")
        if self.revision is not None and spec_rev is not None and self.revision != spec_rev and entry is None:
            raise UsageError(f"two revisions given: {spec_rev!r} in {self.source!r} and {self.revision!r}; pass one")
        if self.cache_dir is not None:
            check_cache_dir(Path(self.cache_dir))

    @property
    def bounds(self) -> NetBounds:
        return NetBounds(self.timeout, self.retries)


@dataclass(frozen=True)
class PullResult:
    """Where a pulled model lives: ``path`` is the model directory (a Hub snapshot, or a converted Drive checkpoint).

    ``sha256`` is that of ``model.safetensors``; ``source`` is ``"hub"`` or ``"drive"`` (then ``revision`` is
    ``drive:<file id>`` and ``original_sha256`` the sha256 of the official ``model_best.pth.tar``).
    """

    name: str
    repo_id: str
    revision: str
    path: str
    sha256: str
    source: str = "hub"
    original_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_cache_dir(path: Path) -> None:
    """A Hub cache folder may be missing (it is created) but must not be a file."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"Hub cache {path} is a file; pass a folder for the Hub cache (--cache-dir or HF_HUB_CACHE; created if missing)")


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


class _QuietBar:
    """The progress-bar class handed to huggingface_hub: shows nothing (progress comes from the transfer)."""

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


@dataclass(frozen=True)
class _Fetch:
    """One pull's fixed facts, shared by the downloads of its files."""

    repo_id: str
    revision: str | None
    cache_dir: str | None
    token: str | bool | None
    offline: bool
    label: str
    bounds: NetBounds
    progress: Progress | None


def _unreachable(e: Exception, transfer: Transfer, endpoint: str) -> NetworkError:
    """What the server did when huggingface_hub found neither the file online nor in the cache."""
    from huggingface_hub.errors import HfHubHTTPError

    cause = e.__cause__ or e.__context__
    if transfer.problem is not None:
        return transfer.error()
    if isinstance(cause, HfHubHTTPError) and cause.response is not None:
        return NetworkError(f"downloading {transfer.what} failed: HTTP {cause.response.status_code} from {endpoint}; "
                            "check the repo name, HF_TOKEN for a private repo, or try again later")
    return NetworkError(f"cannot reach {endpoint} to download {transfer.what} and it is not cached: check the network "
                        "(or HF_ENDPOINT), or set HF_HUB_OFFLINE=1 to use only cached models")


def _download(f: _Fetch, filename: str) -> str:
    """``hf_hub_download`` of one file, bounded (:func:`~sdnet_cli.hub.bounded.hf_bounded`), errors as one sentence each."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RemoteEntryNotFoundError,
        RepositoryNotFoundError, RevisionNotFoundError,
    )

    endpoint, rev = _endpoint(), f.revision or "main"
    transfer = Transfer(f.bounds, f"{f.label}/{filename}", f.progress)
    try:
        with hf_bounded(transfer):
            return hf_hub_download(
                f.repo_id, filename, revision=f.revision, cache_dir=f.cache_dir, endpoint=endpoint, token=f.token,
                local_files_only=f.offline, library_name="sdnet", library_version=__version__,
                etag_timeout=f.bounds.timeout, tqdm_class=_QuietBar)  # type: ignore[arg-type]
    except GatedRepoError:
        raise UsageError(f"{f.repo_id} is gated on {endpoint}: accept its terms on the Hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        local = f"; no local directory {f.repo_id} exists either" if Path(f.repo_id.split("/")[0]).is_dir() else ""
        raise UsageError(f"Hub repo {f.repo_id} not found on {endpoint} (check the name; for a private repo set "
                         f"HF_TOKEN or run 'hf auth login'){local}") from None
    except RevisionNotFoundError:
        raise UsageError(f"revision {rev!r} not found in Hub repo {f.repo_id} (use a branch, tag or commit of the repo)") from None
    except RemoteEntryNotFoundError:
        raise UsageError(f"{f.repo_id}@{rev} has no {filename}: not an sdnet model repo "
                         f"(expected {WEIGHTS_NAME} and {CONFIG_NAME}, as written by 'sdnet export')") from None
    except LocalEntryNotFoundError as e:
        if f.offline:
            raise MissingFileError(
                f"{f.label} is not in the Hub cache{f' {f.cache_dir}' if f.cache_dir else ''} and HF_HUB_OFFLINE is set: "
                f"run 'sdnet pull-weights {f.label}' once with network access (unset HF_HUB_OFFLINE), "
                "or point --cache-dir / HF_HUB_CACHE at a cache that holds it") from None
        raise _unreachable(e, transfer, endpoint) from None
    except HfHubHTTPError as e:
        if transfer.problem is not None:
            raise transfer.error() from None
        status = e.response.status_code if e.response is not None else "error"
        where = origin(str(e.response.url)) if e.response is not None else endpoint
        raise NetworkError(f"downloading {transfer.what} failed: HTTP {status} from {where} "
                           f"({str(e).splitlines()[0][:120]}); try again later") from None
    except OSError as e:  # huggingface_hub's size consistency check, a full disk, …
        if transfer.problem is not None:
            raise transfer.error() from None
        raise NetworkError(f"downloading {transfer.what} failed: {str(e).splitlines()[0][:160]}") from None


def pull(options: PullOptions, progress: Progress | None = None) -> PullResult:
    """Download (or find in the cache) a zoo model or a Hub repo; verify it; return its model directory.

    Zoo entries download their pinned revision and check the pinned sha256 (unpinned ones: their official
    Drive checkpoint, converted); ``options.revision`` overrides ``@REVISION``. With ``HF_HUB_OFFLINE=1`` only the cache is used. ``progress(what, done,
    total)`` is called as bytes arrive.
    """
    entry, repo_id, spec_rev = parse_source(options.source)
    rev = options.revision or spec_rev
    label = entry.name if entry is not None else (f"{repo_id}@{rev}" if rev else repo_id)
    cache = str(options.cache_dir) if options.cache_dir is not None else default_cache_dir()
    if cache is not None:
        check_cache_dir(Path(cache))
    if entry is not None and not entry.published:
        from .drive_pull import pull_official

        return pull_official(entry, cache, options.bounds, is_offline(), progress)
    fetch = _Fetch(repo_id, rev, cache, options.token, is_offline(), label, options.bounds, progress)
    weights = _download(fetch, entry.filename if entry else WEIGHTS_NAME)
    digest = verify_cached_file(weights, entry.sha256 if entry and rev == entry.revision else None,
                                f"{label}/{WEIGHTS_NAME}")
    config = _download(fetch, CONFIG_NAME)
    verify_cached_file(config, None, f"{label}/{CONFIG_NAME}")
    snapshot = Path(weights).parent
    if Path(config).parent != snapshot:  # the branch moved between the two downloads
        raise NetworkError(f"{repo_id} changed while downloading; pull again")
    verify_model_content(snapshot, label, (weights, config))
    return PullResult(name=entry.name if entry else repo_id, repo_id=repo_id, revision=snapshot.name,
                      path=str(snapshot), sha256=digest)


def zoo_rows(cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """The zoo as rows (``sdnet pull-weights --list``): accuracy, source (Hub / official Drive), size, cached.

    ``size``: bytes of the file a pull downloads when known (the Hub pin, or the Drive file recorded at
    its first download), else ``None`` (``size_estimate`` is the float32 state dict's size).
    """
    from .drive_pull import drive_cache_state
    from .zoo import list_entries

    if cache_dir is not None:
        check_cache_dir(Path(cache_dir))
    cache = str(cache_dir) if cache_dir else default_cache_dir()
    rows = []
    for e in list_entries():
        cached, size = None, e.size
        if e.published:
            from huggingface_hub import try_to_load_from_cache

            cached = isinstance(try_to_load_from_cache(e.repo_id, e.filename, cache_dir=cache, revision=e.revision), str)
        elif e.source == "drive":
            cached, size = drive_cache_state(e, cache)
        rows.append({"name": e.name, "architecture": e.architecture, "dataset": e.dataset, "accuracy": e.accuracy,
                     "source": e.source, "repo_id": e.repo_id, "published": e.published, "revision": e.revision,
                     "sha256": e.sha256, "drive_folder": e.drive_url, "drive_sha256": e.drive_sha256,
                     "size": size, "size_estimate": e.estimated_size(), "cached": cached,
                     "export_command": e.export_command()})
    return rows

"""Upload an exported model directory to the Hugging Face Hub (``HfApi.create_repo`` + ``upload_folder``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from ..errors import MissingFileError, UsageError

_REPO_ID = re.compile(r"[^/\s]+/[^/\s]+")


@dataclass
class PushResult:
    """What was uploaded where: ``commit_url`` is the Hub's URL of the new commit."""

    repo_id: str
    revision: str | None
    files: list[str]
    commit_url: str


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` checked by the Hub's own rules; ``ValueError`` naming the problem otherwise."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not _REPO_ID.fullmatch(repo_id or ""):
        raise UsageError(f"malformed Hub repo id {repo_id!r}: expected ORG/NAME (e.g. my-org/sdnet18-cifar10)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UsageError(f"malformed Hub repo id {repo_id!r}: {str(e).splitlines()[0]}") from None
    return repo_id


def folder_files(folder: str | Path) -> list[str]:
    """The files an upload sends: the regular, non-hidden files at the top of ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    files: list[str] | None = None,
    api: Any = None,
) -> PushResult:
    """Create ``repo_id`` if missing (``exist_ok=True``) and upload ``folder``'s files in one commit.

    ``revision``: a branch to commit to (created from the default branch if missing). ``files``: names
    inside ``folder`` to send (default: :func:`folder_files`). ``api``: an ``HfApi``-like object
    (default ``HfApi(token=token)``).
    """
    check_repo_id(repo_id)
    folder = Path(folder)
    files = sorted(files) if files is not None else folder_files(folder)
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise MissingFileError(f"{folder / missing[0]} not found: nothing was uploaded")
    if not files:
        raise UsageError(f"{folder} holds no files to upload")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id=repo_id, branch=revision, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id, repo_type="model", folder_path=str(folder), revision=revision,
        allow_patterns=files, commit_message=commit_message or f"Upload {', '.join(files)} with sdnet export",
    )
    url = getattr(info, "commit_url", None) or str(info)
    return PushResult(repo_id=repo_id, revision=revision, files=files, commit_url=url)

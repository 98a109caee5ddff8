"""A zoo entry from its official Google Drive folder: list, download, check, convert, record, verify on reuse.

``pull_official(entry, …) -> PullResult`` gives what a Hub pull gives — a model directory in the cache —
for an entry not yet pinned on the Hub:

1. list the folder (:func:`~sdnet_cli.hub.drive.list_folder`) and take its ``model_best.pth.tar``;
2. download it (:func:`~sdnet_cli.hub.drive.download_file`: bounded, the confirmation page, resumed with
   ``Range`` from the part file a cut transfer left);
3. check it: its sha256 against the zoo's ``drive_sha256`` pin, else against the sha256 recorded at this
   cache's first download (a changed file on the server is refused); a PyTorch archive; read with
   ``torch.load(weights_only=True)`` and loaded strictly in the official layout
   (:func:`~sdnet_cli.hub.official.import_official`: keys, shapes, dtype kinds, finite);
4. write the model directory as one switch (``model.safetensors``, ``config.json`` with the official
   normalisation, architecture, ``stem_type``, classes and a ``provenance`` object, ``README.md``), then the record.

Cache layout, inside the Hub cache (``--cache-dir`` / ``HF_HUB_CACHE`` / ``HF_HOME``)::

    sdnet-drive/<name>/            the model directory (what the pull prints)
    sdnet-drive/<name>.json        the record: file id, source URL, sha256 and size of model_best.pth.tar,
                                   sha256 of each file of the model directory
    sdnet-drive/.partial/<id>.part a cut download (+ .json: its size and validator), resumed by the next
                                   pull (never used as a model)

A later pull uses the directory only when the record exists and every file still has its recorded sha256
(no network); otherwise it downloads again and the original's sha256 must match the record.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch.nn as nn

from ..errors import MissingFileError, NetworkError, UsageError
from ..fsio import atomic_write_json, file_digest, json_bytes, staged_dir, write_file
from ..models.files import CONFIG_NAME, WEIGHTS_NAME, ModelConfig, write_model_files
from ..netio import NetBounds, Progress, Transfer, origin
from ..outputs import OutputLock, OutputLocked
from .drive import download_file, file_url, list_folder
from .drive_http import discard_part
from .puller import PullResult
from .zoo import DRIVE_FILENAME, OFFICIAL_NORMALIZATION, ZooEntry

DRIVE_DIR = "sdnet-drive"
CARD_NAME = "README.md"
OWNED = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; the legacy pickle format


def cache_root(cache: str | None) -> Path:
    """``<Hub cache>/sdnet-drive`` (``cache`` as given, else huggingface_hub's default cache)."""
    if cache is None:
        from huggingface_hub import constants

        cache = constants.HF_HUB_CACHE
    return Path(cache).expanduser() / DRIVE_DIR


def read_record(path: Path) -> dict[str, Any] | None:
    """The record of a first download (``None`` if there is none); a damaged record is refused."""
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_bytes())
        ok = (isinstance(rec, dict) and isinstance(rec.get("file_id"), str) and _SHA256.fullmatch(rec.get("sha256", ""))
              and isinstance(rec.get("files"), dict) and set(rec["files"]) == set(OWNED)
              and all(isinstance(v, str) and _SHA256.fullmatch(v) for v in rec["files"].values()))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        ok = False
    if not ok:
        raise UsageError(f"the download record {path} is damaged; delete it and {path.with_suffix('')} to fetch the "
                         "official checkpoint again")
    return rec


def _intact(model_dir: Path, record: dict[str, Any]) -> bool:
    """Every file of the model directory exists with its recorded sha256."""
    return all((model_dir / n).is_file() and file_digest(model_dir / n, "sha256") == h
               for n, h in record["files"].items())


def drive_cache_state(entry: ZooEntry, cache: str | None) -> tuple[bool, int | None]:
    """``(cached, size of model_best.pth.tar when recorded)`` for ``--list`` (files present; not re-hashed)."""
    root = cache_root(cache)
    try:
        record = read_record(root / f"{entry.name}.json")
    except UsageError:
        return False, None
    if record is None:
        return False, None
    cached = all((root / entry.name / n).is_file() for n in OWNED)
    size = record.get("size")
    return cached, size if isinstance(size, int) else None


def _result(entry: ZooEntry, model_dir: Path, record: dict[str, Any]) -> PullResult:
    return PullResult(name=entry.name, repo_id=entry.repo_id, revision=f"drive:{record['file_id']}",
                      path=str(model_dir), sha256=record["files"][WEIGHTS_NAME], source="drive",
                      original_sha256=record["sha256"])


def pull_official(entry: ZooEntry, cache: str | None, bounds: NetBounds, offline: bool,
                  progress: Progress | None = None) -> PullResult:
    """The model directory of ``entry`` converted from its official Drive checkpoint (see the module docstring)."""
    assert entry.drive_folder is not None
    root = cache_root(cache)
    model_dir, record_path = root / entry.name, root / f"{entry.name}.json"
    try:
        lock = OutputLock(model_dir).acquire()
    except OutputLocked as e:
        raise UsageError(f"{entry.name} is being pulled into {root} by another process "
                         f"({str(e).split('process ')[-1].split(';')[0]}); wait for it to finish") from None
    try:
        record = read_record(record_path)
        pinned = entry.drive_sha256
        if record is not None and pinned is not None and record["sha256"] != pinned:
            raise UsageError(f"the cached {entry.name} was converted from a file whose sha256 "
                             f"{record['sha256'][:16]}… differs from the zoo's pin {pinned[:16]}…; "
                             f"delete {model_dir} and {record_path}, then pull again")
        if record is not None and _intact(model_dir, record):
            return _result(entry, model_dir, record)
        if model_dir.exists():  # damaged, or written by a pull killed before its record: never used
            shutil.rmtree(model_dir)
        if offline:
            raise MissingFileError(
                f"{entry.name} is not in the cache {root} and HF_HUB_OFFLINE is set: run 'sdnet pull-weights "
                f"{entry.name}' once with network access (unset HF_HUB_OFFLINE), or point --cache-dir / HF_HUB_CACHE "
                "at a cache that holds it")
        try:
            record = _fetch(entry, root, record, bounds, progress)
        except NetworkError as e:  # the transfer's advice names the Hub's variable; here it is Drive's
            text = str(e).replace("HF_ENDPOINT for the Hub", "SDNET_DRIVE_ENDPOINT for Google Drive")
            raise NetworkError(text) from None
        return _result(entry, model_dir, record)
    finally:
        lock.release()


def pick_checkpoint(entry: ZooEntry, files: list[Any]) -> str:
    """The Drive id of the folder's ``model_best.pth.tar`` (exactly one)."""
    ids = [f.id for f in files if f.name == DRIVE_FILENAME]
    if len(ids) != 1:
        listed = ", ".join(sorted(f.name for f in files)[:6]) or "nothing"
        kind = "no" if not ids else f"{len(ids)} files named"
        raise NetworkError(f"the official Google Drive folder of {entry.name} ({entry.drive_url}) holds {kind} "
                           f"{DRIVE_FILENAME} (it lists {listed}); the folder changed — report it to sdnet")
    return ids[0]


def _fetch(entry: ZooEntry, root: Path, record: dict[str, Any] | None, bounds: NetBounds,
           progress: Progress | None) -> dict[str, Any]:
    """Download, check, convert and write ``entry``; returns the new record (written last)."""
    partial = root / ".partial"
    transfer = Transfer(bounds, f"{entry.name}/{DRIVE_FILENAME}", progress)
    file_id = pick_checkpoint(entry, list_folder(entry.drive_folder or "", partial / f"{entry.name}.listing", transfer))
    part = partial / f"{file_id}.part"
    served_by = origin(download_file(file_id, part, transfer))
    try:
        sha256, size = file_digest(part, "sha256"), part.stat().st_size
        _check_sha256(entry, sha256, record, root)
        _check_archive(part, entry, size)
        model, config = convert_official(part, entry, file_id)
    except (UsageError, NetworkError):
        discard_part(part)  # a refused file is never resumed or used
        raise
    provenance = {"source": "official SDNet Google Drive folder", "folder_url": entry.drive_url,
                  "file_name": DRIVE_FILENAME, "file_id": file_id, "source_url": file_url(file_id),
                  "served_by": served_by, "sha256": sha256,
                  "size": size, "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with staged_dir(root / entry.name, OWNED) as staged:
        files = _write(staged, model, config, entry, provenance)
    new = {"name": entry.name, **provenance, "files": files}
    atomic_write_json(root / f"{entry.name}.json", new)
    discard_part(part)
    return new


def _check_sha256(entry: ZooEntry, sha256: str, record: dict[str, Any] | None, root: Path) -> None:
    """The downloaded file's sha256 equals the zoo's pin, else the one recorded at this cache's first download."""
    if entry.drive_sha256 is not None and sha256 != entry.drive_sha256:
        expected, kind = entry.drive_sha256, "the zoo's pinned sha256"
    elif entry.drive_sha256 is None and record is not None and sha256 != record["sha256"]:
        expected, kind = record["sha256"], f"the sha256 recorded at its first download ({record.get('downloaded_at')})"
    else:
        return
    raise UsageError(f"the official {DRIVE_FILENAME} of {entry.name} changed on Google Drive: its sha256 "
                     f"{sha256[:16]}… differs from {kind} {expected[:16]}…; refused (if the authors replaced it on "
                     f"purpose, delete {root / (entry.name + '.json')} to accept the new file)")


def _check_archive(part: Path, entry: ZooEntry, size: int) -> None:
    """The download is a PyTorch checkpoint (a zip archive or the legacy format), not a page or other bytes."""
    with open(part, "rb") as f:
        head = f.read(16)
    if not head.startswith(_ARCHIVE_MAGIC):
        hint = ": an HTML page" if head.lstrip()[:1] == b"<" else ""
        raise NetworkError(f"Google Drive sent {size} bytes for {entry.name}'s {DRIVE_FILENAME} that are not a PyTorch "
                           f"checkpoint (they start with {head!r}{hint}); try again later")


def convert_official(path: Path, entry: ZooEntry, file_id: str) -> tuple[nn.Module, ModelConfig]:
    """``entry``'s model with the official checkpoint at ``path`` loaded strictly; config with the official
    normalisation, the README's accuracy, and where it came from."""
    from .official import import_official

    args = {k: v for k, v in entry.model_args.items() if k != "shortcut"}
    try:
        model, config = import_official(path, entry.architecture, entry.num_classes, entry.stem_type, entry.shortcut,
                                        **args)
    except UsageError as e:
        msg = str(e).replace(str(path), f"{DRIVE_FILENAME} (Drive file {file_id})")
        raise UsageError(f"the official checkpoint of {entry.name} was refused: {msg}") from None
    mean, std = OFFICIAL_NORMALIZATION[entry.dataset]
    metrics = {"top1": entry.accuracy, "top1_source": "official SDNet README",
               "source": f"official checkpoint {DRIVE_FILENAME} (Google Drive file {file_id})"}
    return model, replace(config, dataset=entry.dataset, mean=list(mean), std=list(std), metrics=metrics)


def _write(staged: Path, model: nn.Module, config: ModelConfig, entry: ZooEntry,
           provenance: dict[str, Any]) -> dict[str, str]:
    """The model directory's files into ``staged``; returns ``{name: sha256}``."""
    from .card import render_model_card

    write_model_files(model, staged, config)
    obj = json.loads((staged / CONFIG_NAME).read_bytes())
    obj["provenance"] = provenance
    (staged / CONFIG_NAME).unlink()
    write_file(staged / CONFIG_NAME, json_bytes(obj))
    source = (f"official SDNet checkpoint `{DRIVE_FILENAME}` from its Google Drive folder ({entry.drive_url}), "
              f"sha256 `{provenance['sha256']}`, converted by `sdnet pull-weights {entry.name}`")
    card = render_model_card(config, name=entry.name, source=source)
    write_file(staged / CARD_NAME, card.encode())
    return {n: file_digest(staged / n, "sha256") for n in OWNED}

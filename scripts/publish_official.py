"""Publish an official SDNet checkpoint on the Hub and pin it in the zoo, in one command (for maintainers).

    python scripts/publish_official.py sdnet18-cifar10                # Drive → export → push → verify → pins
    python scripts/publish_official.py sdnet18-cifar10 --checkpoint model_best.pth.tar --format safetensors,onnx
    python scripts/publish_official.py sdnet18-cifar10 --dry-run      # stop after the export; print the pins

1. **Checkpoint**: ``--checkpoint FILE``, else the entry's official ``model_best.pth.tar`` downloaded from its
   Google Drive folder (the same bounded, resumable client as ``sdnet pull-weights``). Its sha256 must equal
   the zoo's ``drive_sha256`` when that is pinned.
2. **Export**: ``sdnet export``'s library call (strict official-layout load with ``weights_only``, the official
   normalisation and accuracy in ``config.json``, the model card; ONNX checked with ``--format …,onnx``).
3. **Push**: one commit of exactly those files to ``ORG/NAME`` (``hf auth login`` or ``HF_TOKEN`` first).
4. **Verify**: pull ``ORG/NAME@<commit>`` back from the Hub into a fresh cache (hash and content checks) and
   compare its logits with the export's on a fixed input (bit-exact).
5. **Pin**: ``revision``, ``sha256``, ``size`` and ``drive_sha256`` written into ``sdnet_cli/hub/zoo.py``
   (the ``PINS`` block between its marker lines, replaced as a whole file). Review and commit the change.

Nothing is pinned unless every step passed. Exit 2 on a usage error, 1 on any other failure, one line each.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from sdnet_cli.errors import NetworkError, UsageError
from sdnet_cli.fsio import atomic_write_bytes, file_digest
from sdnet_cli.hub import ExportOptions, PullOptions, export, pull
from sdnet_cli.hub import zoo
from sdnet_cli.hub.drive import download_file, list_folder
from sdnet_cli.hub.drive_pull import pick_checkpoint
from sdnet_cli.hub.push import push_to_hub
from sdnet_cli.models.files import WEIGHTS_NAME, load_model_dir
from sdnet_cli.netio import NetBounds, Transfer

ZOO_PY = Path(__file__).resolve().parents[1] / "sdnet_cli" / "hub" / "zoo.py"
_PINS = re.compile(r"(# -- pins: begin --\n)PINS: dict\[str, dict\[str, Any\]\] = (\{.*?\})\n(# -- pins: end --)", re.S)
_COMMIT = re.compile(r"/commit/([0-9a-f]{40})")


def fetch_checkpoint(entry: zoo.ZooEntry, workdir: Path, bounds: NetBounds) -> Path:
    """The entry's official ``model_best.pth.tar`` from its Drive folder, into ``workdir``."""
    if entry.drive_folder is None:
        raise UsageError(f"{entry.name} has no official Drive folder; pass --checkpoint FILE")
    transfer = Transfer(bounds, f"{entry.name}/{zoo.DRIVE_FILENAME}")
    file_id = pick_checkpoint(entry, list_folder(entry.drive_folder, workdir / "listing.part", transfer))
    part = workdir / f"{file_id}.part"
    download_file(file_id, part, transfer)
    Path(str(part) + ".json").unlink(missing_ok=True)  # the resume record of drive_http
    return part.rename(workdir / zoo.DRIVE_FILENAME)


def write_pins(zoo_py: Path, name: str, pins: dict[str, Any]) -> None:
    """Set ``PINS[name] = pins`` in ``zoo_py`` (the block between the marker lines), written as a whole file."""
    text = zoo_py.read_text()
    m = _PINS.search(text)
    if m is None:
        raise UsageError(f"{zoo_py} has no PINS block between '# -- pins: begin --' and '# -- pins: end --'")
    table = ast.literal_eval(m.group(2))
    table[name] = pins
    fields = {k: ", ".join(f"{f!r}: {v!r}" for f, v in table[k].items()) for k in table}
    body = "".join(f"    {k!r}: {{{fields[k]}}},\n" for k in sorted(table))
    block = f"{m.group(1)}PINS: dict[str, dict[str, Any]] = {{\n{body}}}\n{m.group(3)}"
    atomic_write_bytes(zoo_py, (text[:m.start()] + block + text[m.end():]).encode())


def _same_logits(a: Path, b: Path, entry: zoo.ZooEntry) -> bool:
    size = 64 if entry.stem_type == "imagenet" else 32
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(load_model_dir(a)[0](x), load_model_dir(b)[0](x))


def publish(name: str, checkpoint: Path | None = None, org: str = zoo.HUB_ORG, formats: str = "safetensors",
            workdir: Path | None = None, zoo_py: Path = ZOO_PY, api: Any = None, bounds: NetBounds = NetBounds(),
            dry_run: bool = False) -> dict[str, Any]:
    """Steps 1-5 of the module docstring for zoo entry ``name``; returns the pins (written unless ``dry_run``)."""
    entry = zoo.get_entry(name)
    work = Path(workdir or tempfile.mkdtemp(prefix=f"publish-{name}-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = Path(checkpoint) if checkpoint else fetch_checkpoint(entry, work, bounds)
    drive_sha256 = file_digest(ckpt, "sha256")
    if entry.drive_sha256 is not None and drive_sha256 != entry.drive_sha256:
        raise UsageError(f"{ckpt} has sha256 {drive_sha256}, not the zoo's drive_sha256 {entry.drive_sha256}")
    out = work / name
    result = export(ExportOptions(source=str(ckpt), output=out, formats=tuple(formats.split(",")),
                                  arch=entry.architecture, num_classes=entry.num_classes, stem_type=entry.stem_type,
                                  shortcut=entry.shortcut, dataset=entry.dataset))
    sha256 = file_digest(out / WEIGHTS_NAME, "sha256")
    pins: dict[str, Any] = {"revision": None, "sha256": sha256, "size": (out / WEIGHTS_NAME).stat().st_size,
                            "drive_sha256": drive_sha256}
    if dry_run:
        return pins
    repo = f"{org}/{name}"
    pushed = push_to_hub(out, repo, files=result.files, api=api,
                         commit_message=f"{name}: official SDNet checkpoint (sha256 {drive_sha256}) converted by sdnet")
    m = _COMMIT.search(pushed.commit_url)
    if m is None:
        raise NetworkError(f"the Hub's answer names no commit: {pushed.commit_url}")
    pins["revision"] = m.group(1)
    pulled = pull(PullOptions(f"{repo}@{pins['revision']}", cache_dir=work / "verify-cache", timeout=bounds.timeout,
                              retries=bounds.retries))
    if pulled.sha256 != sha256 or not _same_logits(Path(pulled.path), out, entry):
        raise NetworkError(f"{repo}@{pins['revision']} pulled back differs from the export in {out}; nothing pinned")
    write_pins(zoo_py, name, pins)
    return pins


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="zoo entry (sdnet pull-weights --list)")
    p.add_argument("--checkpoint", type=Path, help="the official model_best.pth.tar (default: from its Drive folder)")
    p.add_argument("--org", default=zoo.HUB_ORG, help=f"Hub organisation (default {zoo.HUB_ORG})")
    p.add_argument("--format", default="safetensors", help="safetensors or safetensors,onnx")
    p.add_argument("--workdir", type=Path, help="where the checkpoint and the export go (default: a temp folder)")
    p.add_argument("--dry-run", action="store_true", help="stop after the export and print the pins")
    args = p.parse_args(argv)
    try:
        pins = publish(args.name, args.checkpoint, args.org, args.format, args.workdir, dry_run=args.dry_run)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line for a maintainer's terminal
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(("would pin " if args.dry_run else f"pinned in {ZOO_PY}: ") + f"{args.name} {pins}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The model zoo: named SDNet checkpoints on the Hugging Face Hub, or in their official Google Drive folder.

Each entry names a Hub repository (a model directory: ``model.safetensors`` + ``config.json`` +
``README.md``), the architecture it holds and the official top-1 accuracy (SDNet paper / official
README). An entry is *published* once its Hub ``revision`` (a 40-hex commit) and the ``sha256`` of its
``model.safetensors`` are pinned here. Until then it is fetched from ``drive_folder``, the public Google
Drive folder the official README links (``model_best.pth.tar``, converted on the user's machine:
:mod:`~sdnet_cli.hub.drive_pull`); ``drive_sha256`` pins that file once a maintainer has read it. Never fill
pins with anything but values read from the uploaded repository or the downloaded file
(``scripts/publish_official.py`` prints them).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any
from ..errors import UsageError
from ..models.registry import model_arg_names

HUB_ORG = "sdnet"
"""Planned Hub organisation of the zoo repositories (nothing is uploaded there yet)."""

WEIGHTS_FILE = "model.safetensors"

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

OFFICIAL_NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": (CIFAR_MEAN, CIFAR_STD),
    "cifar100": (CIFAR_MEAN, CIFAR_STD),  # the official code uses the CIFAR-10 statistics for both
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}
"""Input normalisation of the official training code (``train.py``), per dataset."""

OFFICIAL_CSC_ARGS: dict[str, Any] = {"lmbd": 0.1, "n_steps": 2, "mu": 0.0, "non_negative": True}
"""CSC settings of every official checkpoint (``experiments/*.yaml``: λ 0.1, 2 FISTA steps, μ 0, z ≥ 0)."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_DRIVE_ID = re.compile(r"[-\w]{10,}")
DRIVE_FILENAME = "model_best.pth.tar"
"""The checkpoint taken from an official Google Drive folder (the folder also holds the last checkpoint and logs)."""


@dataclass(frozen=True)
class ZooEntry:
    """One named checkpoint: where it lives on the Hub, what it is, and its pins once published."""

    name: str
    architecture: str
    dataset: str
    num_classes: int
    stem_type: str
    shortcut: bool
    accuracy: float
    """Official top-1 accuracy in percent (SDNet paper / official README)."""
    repo_id: str
    filename: str = WEIGHTS_FILE
    revision: str | None = None
    """Hub commit (40 hex) of the published repository; ``None`` until published."""
    sha256: str | None = None
    """sha256 of ``filename`` at ``revision``; ``None`` until published."""
    size: int | None = None
    """Size of ``filename`` in bytes, when known."""
    drive_folder: str | None = None
    """Id of the official Google Drive folder holding ``model_best.pth.tar`` (``None``: the README links none)."""
    drive_sha256: str | None = None
    """sha256 of the official ``model_best.pth.tar``, once a maintainer has pinned it (else recorded at first use)."""

    def __post_init__(self) -> None:
        if self.drive_folder is not None and not _DRIVE_ID.fullmatch(self.drive_folder):
            raise UsageError(f"zoo entry {self.name}: drive_folder must be a Google Drive id, "
                             f"got {self.drive_folder!r}")
        if self.drive_sha256 is not None and not _SHA256.fullmatch(self.drive_sha256):
            raise UsageError(f"zoo entry {self.name}: drive_sha256 must be 64 hex digits, got {self.drive_sha256!r}")
        if (self.revision is None) != (self.sha256 is None):
            raise UsageError(f"zoo entry {self.name}: pin both revision and sha256, or neither")
        if self.revision is not None and not _COMMIT.fullmatch(self.revision):
            raise UsageError(f"zoo entry {self.name}: revision must be a 40-hex commit, got {self.revision!r}")
        if self.sha256 is not None and not _SHA256.fullmatch(self.sha256):
            raise UsageError(f"zoo entry {self.name}: sha256 must be 64 hex digits, got {self.sha256!r}")

    @property
    def published(self) -> bool:
        """Whether the weights are on the Hub with a pinned revision and sha256."""
        return self.revision is not None and self.sha256 is not None

    @property
    def source(self) -> str:
        """Where a pull gets it: ``"hub"`` (pinned there), ``"drive"`` (official folder) or ``"none"``."""
        return "hub" if self.published else ("drive" if self.drive_folder else "none")

    @property
    def drive_url(self) -> str | None:
        """The official folder's public URL (as the official README links it)."""
        return f"https://drive.google.com/drive/folders/{self.drive_folder}" if self.drive_folder else None

    @property
    def model_args(self) -> dict[str, Any]:
        """Keyword arguments of ``create_model`` besides ``num_classes`` and ``stem_type``."""
        args = dict(OFFICIAL_CSC_ARGS)
        if "shortcut" in model_arg_names(self.architecture):
            args["shortcut"] = self.shortcut
        return args

    def estimated_size(self) -> int:
        """Bytes of the state dict in float32 (built on the meta device); the file adds a header of a few KB."""
        import torch

        from ..models.registry import create_model

        with torch.device("meta"):
            model = create_model(self.architecture, num_classes=self.num_classes, stem_type=self.stem_type,
                                 **self.model_args)
        return sum(t.numel() * t.element_size() for t in model.state_dict().values())

    def export_command(self) -> str:
        """The ``sdnet export`` command that turns the official ``model_best.pth.tar`` into this entry."""
        flags = f"--arch {self.architecture} --num-classes {self.num_classes} --stem-type {self.stem_type}"
        if not self.shortcut:
            flags += " --no-shortcut"
        return f"sdnet export model_best.pth.tar {flags} --dataset {self.dataset} --output {self.name}"


# Pins per entry name: ``revision``, ``sha256``, ``size`` of the uploaded repo's model.safetensors, and
# ``drive_sha256`` of the official file. Written by scripts/publish_official.py from the uploaded repo and the
# downloaded file (between the two marker lines); never by hand.
# -- pins: begin --
PINS: dict[str, dict[str, Any]] = {}
# -- pins: end --


def _entry(arch: str, dataset: str, shortcut: bool, accuracy: float, drive_folder: str | None) -> ZooEntry:
    num_classes, stem_type = {"cifar10": (10, "cifar"), "cifar100": (100, "cifar"), "imagenet": (1000, "imagenet")}[dataset]
    name = f"{arch}{'' if shortcut else '-noshortcut'}-{dataset}"
    return ZooEntry(name=name, architecture=arch, dataset=dataset, num_classes=num_classes, stem_type=stem_type,
                    shortcut=shortcut, accuracy=accuracy, repo_id=f"{HUB_ORG}/{name}", drive_folder=drive_folder,
                    **PINS.get(name, {}))


# Official accuracies and Drive folders: the official SDNet README's "Pre-trained Models" table (top-1, %;
# shared/reference/official_checkpoints.md). sdnet18_all-imagenet was added last to the README, without a link.
ZOO: dict[str, ZooEntry] = {e.name: e for e in (
    _entry("sdnet18", "cifar10", True, 95.34, "1oZELeYgrNicKMtuO6RcZgafJMieixawy"),
    _entry("sdnet18_all", "cifar10", True, 95.02, "184YiNng89l2S1g-DPQD_gp8jb3vaTCLw"),
    _entry("sdnet18_all", "cifar10", False, 94.89, "1SaVLqGJak-EmaTGwU14juvwIBJn9baFJ"),
    _entry("sdnet18", "cifar100", True, 78.45, "1EMA-f-6PsxAvaObp1zXuivl-EDFW4MPc"),
    _entry("sdnet18_all", "cifar100", True, 77.89, "1XYtv8Oh4wgHhP_UAF2P0AZHG0fH6AQEc"),
    _entry("sdnet18_all", "cifar100", False, 77.28, "1Jx871n7JAFVCkly8JRCBqKeQAnCNI-rH"),
    _entry("sdnet18", "imagenet", True, 69.78, "1USIY9H3Aa4EV0K0T71gCe2VDSbyBIVO0"),
    _entry("sdnet18_all", "imagenet", True, 69.68, None),
    _entry("sdnet18_all", "imagenet", False, 69.03, "1uKl1QrZyR4M0tNu7d0EF8awQtg2kMLa-"),
)}


def list_entries() -> list[ZooEntry]:
    """All zoo entries, in table order."""
    return list(ZOO.values())


def get_entry(name: str) -> ZooEntry:
    """The zoo entry ``name``; a ``ValueError`` suggesting the closest names when it does not exist."""
    if name in ZOO:
        return ZOO[name]
    close = difflib.get_close_matches(name, list(ZOO), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UsageError(f"unknown zoo model {name!r}.{hint} Run 'sdnet pull-weights --list' for the zoo, "
                     "or pass a Hub repo as ORG/NAME[@REVISION]")


def find_entry(architecture: str, num_classes: int, stem_type: str, shortcut: bool = True) -> ZooEntry | None:
    """The zoo entry with this architecture, head and ``stem_type`` (``None`` if there is none)."""
    for e in ZOO.values():
        if (e.architecture, e.num_classes, e.stem_type, e.shortcut) == (architecture, num_classes, stem_type, shortcut):
            return e
    return None


def dataset_for(num_classes: int, stem_type: str) -> str | None:
    """The official dataset of a head size and ``stem_type`` (``10, 'cifar'`` → ``'cifar10'``), else ``None``."""
    official = {(10, "cifar"): "cifar10", (100, "cifar"): "cifar100", (1000, "imagenet"): "imagenet"}
    return official.get((num_classes, stem_type))

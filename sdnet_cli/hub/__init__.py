"""The Hub side of sdnet: export, pull, the model zoo, official checkpoints, model cards.

Library calls behind the commands: :func:`export` (``sdnet export``: ``ExportOptions -> ExportResult``)
and :func:`pull` (``sdnet pull-weights``: ``PullOptions -> PullResult``); :func:`load_model` resolves any
model source (local folder, zoo name, ``ORG/REPO[@REV]``). A zoo name not yet pinned on the Hub is fetched
from its official Google Drive folder and converted (:mod:`~sdnet_cli.hub.drive_pull`).
"""

from .exporter import ExportOptions, ExportResult, export
from .puller import PullOptions, PullResult, pull, zoo_rows
from .resolve import load_model, load_model_with_config, resolve_model_dir

__all__ = ["ExportOptions", "ExportResult", "PullOptions", "PullResult", "export", "load_model",
           "load_model_with_config", "pull", "resolve_model_dir", "zoo_rows"]

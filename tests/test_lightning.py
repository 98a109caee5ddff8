"""A stock Lightning ``Trainer`` validates (under ``torch.inference_mode``, Lightning's default) then fits an SDNet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import sdnet_cli as sd
from sdnet_cli.layers import csc_layers

L = pytest.importorskip("lightning")


class Classifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = sd.create_model("sdnet18_all", num_classes=4, width=8)

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def validation_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.model(x), y))

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(16, 3, 16, 16, generator=g), torch.randint(0, 4, (16,), generator=g))
    return DataLoader(data, batch_size=8)


def test_trainer_validates_then_fits(tmp_path) -> None:
    torch.manual_seed(0)
    module = Classifier()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, limit_val_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    assert trainer.validate(module, dataloaders=loader(1), verbose=False)[0]["val_loss"] > 0  # a fresh model
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, train_dataloaders=loader(2), val_dataloaders=loader(1))
    assert trainer.global_step == 3
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    assert all(layer._v.numel() > 0 for layer in csc_layers(module.model))  # training set the step sizes

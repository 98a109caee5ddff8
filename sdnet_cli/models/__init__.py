"""Models: one ResNet with the conv layer injected, a registry of builders, model directories."""

from .files import ModelConfig, load_model_dir, save_model
from .registry import create_model, list_models

__all__ = ["ModelConfig", "create_model", "list_models", "load_model_dir", "save_model"]

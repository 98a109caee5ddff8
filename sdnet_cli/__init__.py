"""sdnet: sparse convolutional models (SDNet, NeurIPS 2022) for PyTorch.

>>> import sdnet_cli as sd
>>> m = sd.create_model("sdnet18", num_classes=10, stem_type="cifar")
"""

from ._version import __version__  # noqa: E402

# The public names load on first use (PEP 562): ``import sdnet_cli`` (and so the ``sdnet`` command's own start-up,
# where Ctrl-C must be one line) does not import torch until something needs it.
_EXPORTS = {
    "CSCConv2d": ".layers", "SparseCodingLinear": ".layers", "converge_step_sizes": ".layers",
    "csc_layers": ".layers", "set_lmbd": ".layers", "track_step_sizes": ".layers",
    "update_step_sizes": ".layers",  # the deprecated name of converge_step_sizes (warns once), not in __all__
    "ModelConfig": ".models", "create_model": ".models", "list_models": ".models", "save_model": ".models",
    "load_model": ".hub.resolve",
    "ConversionReport": ".conversion", "convert": ".conversion", "plan_conversion": ".conversion",
}


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        from importlib import import_module

        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "__version__",
    "CSCConv2d",
    "ConversionReport",
    "SparseCodingLinear",
    "ModelConfig",
    "create_model",
    "converge_step_sizes",
    "csc_layers",
    "convert",
    "list_models",
    "load_model",
    "plan_conversion",
    "save_model",
    "set_lmbd",
    "track_step_sizes",
]

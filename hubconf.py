"""``torch.hub`` entry points: ``torch.hub.load("OWNER/sdnet", "sdnet18", num_classes=10)``.

Each registry model is an entry point taking :func:`sdnet_cli.create_model`'s keyword arguments
(``num_classes``, ``stem_type``, ``lmbd``, ``n_steps``, …); ``create_model`` takes any model name, including
``torchvision:NAME`` / ``timm:NAME`` with ``convert``; ``load_model`` loads a trained model (a model
directory, a zoo name or a Hub repo ``org/repo[@rev]``). No weights are downloaded by the builders.
"""

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub", "yaml"]

from sdnet_cli import create_model, load_model  # noqa: E402,F401 - entry points too


def _entry(name: str):
    def entry(**kwargs):
        return create_model(name, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"{name} (sdnet_cli.create_model({name!r}, **kwargs)): num_classes, stem_type, lmbd, n_steps, …"
    return entry


sdnet18 = _entry("sdnet18")
sdnet18_all = _entry("sdnet18_all")
sdnet34 = _entry("sdnet34")
sdnet34_all = _entry("sdnet34_all")
resnet18 = _entry("resnet18")
resnet34 = _entry("resnet34")

"""``convert(model, where=…)``: replace ``nn.Conv2d`` modules of any ``nn.Module`` by :class:`CSCConv2d`.

Each replaced conv becomes a CSC layer with the same in/out channels, kernel, stride, padding, dilation and
groups (a grouped or depthwise conv gets a block-diagonal dictionary), so output shapes and parameter counts
stay those of the original; a conv's bias stays as an addition after the code. The dictionary starts from
the conv's weight with every atom scaled to unit norm (``init="conv"``) or at random (``init="random"``).

Which convs (``where``):

- ``"stem"``: the first convolution that sees the image, found by running the model on a zero image with a
  forward-pre-hook on every convolution module: the first hook called names the stem and stops the pass
  (nothing after it runs, so it costs nothing, and no module name is guessed);
- ``"all"``: every convolution whose kernel is larger than 1×1 (1×1 projections stay, as in SDNet-all);
- a list of module names, exactly those;
- a predicate ``(name, conv) -> bool`` over every convolution module.

Unsupported selections (``padding_mode`` other than zeros, transposed or non-2-D convolutions, subclasses
with their own forward such as same-padding or weight-standardised convs, asymmetric ``padding="same"``) are
reported by name: a :class:`UsageError` unless ``skip_unsupported=True``, which keeps them and lists them in
the report. Nothing selected is also a :class:`UsageError`. The model is changed in place and returned.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.conv import _ConvNd

from .errors import UsageError
from .layers.csc import CSCConv2d
from .layers.sparse_coding import _SparseCoding
from .layers.functional import CodingOptions, normalize_atoms

Where = str | Sequence[str] | Callable[[str, nn.Module], bool]
CSC_ARGS: tuple[str, ...] = tuple(CodingOptions.__annotations__)
"""The CSC layer's options, the keys of :class:`~sdnet_cli.layers.functional.CodingOptions` (``mu``, ``n_steps``,
``non_negative``, ``lmbd``, ``expansion``, ``power_iters``): what :func:`convert` and the registry's SDNet
builders pass to every CSC layer they make."""
INITS = ("conv", "random")


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion replaces: module names in module order, and the selected convs it cannot replace."""

    where: str
    replaced: tuple[str, ...]
    unsupported: tuple[tuple[str, str], ...] = ()
    stem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "replaced": list(self.replaced), "stem": self.stem,
                "unsupported": [{"name": n, "reason": r} for n, r in self.unsupported]}


class _StemFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def find_stem(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> str:
    """Name of the first convolution module (``nn.Conv*`` or a CSC layer) called in a forward pass.

    The pass runs on a zero image ``(1, *input_size)`` in eval mode without autograd (modes are restored);
    ``input_size`` defaults to the model's ``pretrained_cfg`` input size (timm) or ``(C, 224, 224)`` with
    ``C`` the ``in_channels`` of the first convolution registered.
    """
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, (_ConvNd, _SparseCoding))]
    if not convs:
        raise UsageError(f"{type(model).__name__} has no convolution to convert")
    size = tuple(input_size or _default_input_size(model, convs[0][1]))
    hooks = [m.register_forward_pre_hook(_stop_at(n)) for n, m in convs]
    modes = [(m, m.training) for m in model.modules()]
    param = next(model.parameters(), None)
    x = torch.zeros((1, *size), device=param.device if param is not None else "cpu",
                    dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32)
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    except _StemFound as found:
        return found.name
    except (RuntimeError, ValueError, AssertionError, IndexError) as e:  # the model's forward refused the probe's size
        raise UsageError(f"could not run {type(model).__name__} on a {tuple(x.shape)} probe image to find its stem "
                         f"({type(e).__name__}: {e}); pass input_size=(C, H, W) or name the layers (where=[...])") from None
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes:
            m.training = training
    raise UsageError(f"no convolution of {type(model).__name__} sees the image in a forward pass; "
                     "name the layers to convert (where=[...])")


def _stop_at(name: str) -> Callable[..., None]:
    def hook(_module: nn.Module, _inputs: Any) -> None:
        raise _StemFound(name)

    return hook


def _default_input_size(model: nn.Module, first: nn.Module) -> tuple[int, int, int]:
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)) and len(cfg["input_size"]) == 3:
        return tuple(int(v) for v in cfg["input_size"])  # type: ignore[return-value]
    return (int(getattr(first, "in_channels", 3)), 224, 224)


def unsupported_reason(conv: nn.Module) -> str | None:
    """Why ``conv`` cannot become a :class:`CSCConv2d` (``None`` when it can)."""
    if isinstance(conv, nn.modules.conv._ConvTransposeNd):
        return "a transposed convolution"
    if not isinstance(conv, nn.Conv2d):
        return f"a {type(conv).__name__} (only 2-D convolutions are converted)"
    if type(conv).forward is not nn.Conv2d.forward or type(conv)._conv_forward is not nn.Conv2d._conv_forward:
        return f"a {type(conv).__name__}, whose own forward is not a plain convolution"
    if isinstance(conv.weight, nn.parameter.UninitializedParameter):
        return "a lazy convolution that has not seen an input"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} (only 'zeros' padding has a transposed-convolution adjoint)"
    if isinstance(conv.padding, str) and _int_padding(conv) is None:
        return f"padding={conv.padding!r} pads unevenly for this kernel and dilation"
    return None


def _int_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """``conv.padding`` as ints: ``'valid'`` = 0, ``'same'`` = ``d(k−1)/2`` when even on both sides, else ``None``."""
    if not isinstance(conv.padding, str):
        return tuple(conv.padding)  # type: ignore[return-value]
    if conv.padding == "valid":
        return (0, 0)
    total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
    return None if any(t % 2 for t in total) else (total[0] // 2, total[1] // 2)


def _kernel_above_one(conv: nn.Module) -> bool:
    return any(k > 1 for k in getattr(conv, "kernel_size", (1,)))


def _describe(where: Where) -> str:
    if isinstance(where, str):
        return where
    if callable(where):
        return f"predicate {getattr(where, '__name__', type(where).__name__)}"
    return "names"


def _select(model: nn.Module, where: Where, input_size: tuple[int, int, int] | None) -> tuple[list[str], str | None]:
    """Module names chosen by ``where`` (module order) and the traced stem (``where="stem"`` only)."""
    convs = {n: m for n, m in model.named_modules() if isinstance(m, _ConvNd)}
    if isinstance(where, str):
        if where == "all":
            return [n for n, m in convs.items() if _kernel_above_one(m)], None
        if where == "stem":
            stem = find_stem(model, input_size)
            if stem not in convs:
                raise UsageError(f"the stem {stem!r} is already a CSC layer: nothing to convert")
            return [stem], stem
        raise UsageError(f"where must be 'stem', 'all', a list of module names or a predicate, got {where!r}")
    if callable(where):
        return [n for n, m in convs.items() if where(n, m)], None
    names = [str(n) for n in where]
    for n in names:
        if n not in convs:
            close = difflib.get_close_matches(n, list(convs), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{n!r} is not a convolution of {type(model).__name__}{hint}")
    return [n for n in convs if n in set(names)], None


def plan_conversion(model: nn.Module, where: Where = "stem", *, input_size: tuple[int, int, int] | None = None,
                    ) -> ConversionReport:
    """What :func:`convert` would replace (``replaced``) and which selected convs it cannot (``unsupported``).

    Changes nothing; ``UsageError`` when ``where`` selects nothing.
    """
    chosen, stem = _select(model, where, input_size)
    modules = dict(model.named_modules())
    bad = tuple((n, r) for n in chosen if (r := unsupported_reason(modules[n])) is not None)
    ok = tuple(n for n in chosen if n not in dict(bad))
    if not chosen:
        raise UsageError(f"where={_describe(where)!r} selects no convolution of {type(model).__name__}: nothing to convert")
    return ConversionReport(where=_describe(where), replaced=ok, unsupported=bad, stem=stem)


def csc_from_conv(conv: nn.Conv2d, init: str = "conv", **csc_args: Any) -> CSCConv2d:
    """A :class:`CSCConv2d` with ``conv``'s geometry, device and dtype; ``init="conv"`` copies the weight with
    unit-norm atoms and the bias (and inits the step size for it), ``"random"`` keeps the layer's own
    initialisation (bias zero)."""
    padding = _int_padding(conv)
    assert padding is not None and unsupported_reason(conv) is None  # checked by plan_conversion
    layer = CSCConv2d(conv.in_channels, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride), padding,
                      tuple(conv.dilation), conv.groups, bias=conv.bias is not None, **csc_args)
    layer = layer.to(device=conv.weight.device, dtype=conv.weight.dtype).train(conv.training)
    if init == "conv":
        with torch.no_grad():
            if layer.weight.shape != conv.weight.shape:  # expansion > 1: one copy of the weight per input copy
                layer.weight.copy_(normalize_atoms(conv.weight.repeat(1, layer.expansion, 1, 1)))
            else:
                layer.weight.copy_(normalize_atoms(conv.weight))
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        layer.init_step_size()  # the fresh step size belongs to the copied dictionary, also in a saved model
    return layer


def check_csc_args(csc_args: dict[str, Any], init: str) -> None:
    """``UsageError`` for keyword arguments a CSC layer does not take, or an unknown ``init``."""
    unknown = sorted(set(csc_args) - set(CSC_ARGS))
    if unknown:
        raise UsageError(f"unknown CSC argument(s) {', '.join(unknown)}; valid: {', '.join(CSC_ARGS)}")
    if init not in INITS:
        raise UsageError(f"init must be one of {', '.join(INITS)}, got {init!r}")


def convert(
    model: nn.Module,
    where: Where = "stem",
    *,
    init: str = "conv",
    return_report: bool = False,
    skip_unsupported: bool = False,
    input_size: tuple[int, int, int] | None = None,
    **csc_args: Any,
) -> nn.Module | tuple[nn.Module, ConversionReport]:
    """Replace the convolutions ``where`` selects by CSC layers (in place); returns the model, and with
    ``return_report`` also the :class:`ConversionReport`. ``csc_args``: ``lmbd``, ``mu``, ``n_steps``,
    ``non_negative``, ``expansion``, ``power_iters`` of every new layer. A module registered under several
    names is replaced under all of them by one CSC layer."""
    check_csc_args(csc_args, init)
    report = plan_conversion(model, where, input_size=input_size)
    if report.unsupported and not skip_unsupported:
        listed = "; ".join(f"{n}: {r}" for n, r in report.unsupported)
        raise UsageError(f"cannot convert {len(report.unsupported)} selected convolution(s) — {listed} "
                         "(choose other layers, or pass skip_unsupported=True to keep them)")
    modules = dict(model.named_modules())
    new = {id(modules[n]): csc_from_conv(modules[n], init, **csc_args) for n in report.replaced}
    if "" in report.replaced:  # the model itself is one conv
        return (new[id(model)], report) if return_report else new[id(model)]
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if id(module) in new and name:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, new[id(module)])
    return (model, report) if return_report else model

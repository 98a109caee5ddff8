"""``RobustOptions``: everything ``sdnet robust`` is asked to do, validated once, at construction.

Nothing is read, written, downloaded or started before these checks pass: flags (finite and in range),
names (corruptions, levels per protocol, attacks, devices), and the combinations of flags. The options
that need files (models, the CIFAR-C folder, a ``lambda_fit.json``) are checked by :func:`robust.run`
before it writes anything.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import require_finite, require_int
from ..data.corruptions import SDNET_LEVELS, parse_corruptions
from ..devices import check_device
from ..errors import UsageError
from ..deprecations import renamed_fields
from ..netio import DEFAULT_TIMEOUT, NetBounds
from .attacks import ATTACKS, LIBRARY_ATTACKS
from .conditions import PROTOCOLS, parse_levels

DEFAULT_LMBD_SPEC = "0.1:1.4:0.1"  # the --lambdas default: the official sweep, 14 values 0.1 … 1.4


def parse_lmbds(spec: str) -> tuple[float, ...]:
    """``'0.1:1.4:0.1'`` (start:stop:step, stop included), ``'0.1,0.5,1'`` or ``'none'`` → λ values; the values
    are checked (finite, ≥ 0) by :class:`RobustOptions`, once."""
    spec = spec.strip()
    if spec.lower() in ("", "none", "off"):
        return ()
    try:
        if ":" in spec:
            start, stop, step = (float(v) for v in spec.split(":"))
            if not all(math.isfinite(v) for v in (start, stop, step)) or step <= 0 or stop < start:
                raise ValueError
            count = int(round((stop - start) / step)) + 1
            values = [round(start + i * step, 10) for i in range(count)]
        else:
            values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"bad --lambdas {spec!r}: use start:stop:step (e.g. 0.1:1.4:0.1) or a list (0.1,0.5,1)") from None
    return tuple(values)


OLD_NAMES = {"lambdas": "lmbds", "auto_lambda": "auto_lmbd", "lambda_fit": "lmbd_fit",  # deprecated, warn once
             "wants_auto_lambda": "wants_auto_lmbd"}


@renamed_fields(OLD_NAMES)
@dataclass(frozen=True)
class RobustOptions:
    """What ``sdnet robust`` measures (one field per flag; see ``sdnet robust --help``)."""

    models: tuple[str, ...]
    corruptions: str | None = None            # spec: all | benchmark | group | names (default: noise)
    severities: str | None = None             # spec: all | 1-5 | 3,5 | NAME=LEVELS;NAME=LEVELS
    protocol: str = "cifar-c"
    cifar_c_dir: Path | None = None
    download: bool = False
    timeout: float = DEFAULT_TIMEOUT          # --download: seconds without data before a retry or the end
    dataset: str | None = None
    data_root: Path | None = None
    image_size: int | None = None
    lmbds: tuple[float, ...] = field(default_factory=lambda: parse_lmbds(DEFAULT_LMBD_SPEC))
    lmbd_layers: str = "first"
    auto_lmbd: bool = False
    lmbd_fit: Path | None = None
    calib_images: int = 512
    recalibrate_bn: int = 0
    attack: str | None = None
    norm: str = "linf"                        # threat model of the library attacks (PGD's is in its name)
    eps: tuple[float, ...] = (8 / 255,)
    steps: int = 10
    step_size: float | None = None
    checks: bool = True
    max_images: int | None = None
    batch_size: int = 500
    seed: int = 0
    device: str = "cpu"
    output: Path = Path("robust-results")
    plots: bool = True

    def __post_init__(self) -> None:
        if not self.models:
            raise UsageError("give at least one MODEL")
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"unknown --protocol {self.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if self.lmbd_layers not in ("first", "all"):
            raise UsageError(f"--lambda-layers must be first or all, got {self.lmbd_layers!r}")
        if self.attack is not None and self.attack not in ATTACKS:
            raise UsageError(f"unknown --attack {self.attack!r}; valid: {', '.join(ATTACKS)}")
        if self.norm not in ("linf", "l2"):
            raise UsageError(f"--norm must be linf or l2, got {self.norm!r}")
        if self.protocol == "sdnet-noise" and (self.cifar_c_dir is not None or self.download):
            raise UsageError("--protocol sdnet-noise generates its noise on the fly; drop --cifar-c-dir/--download")
        if self.download and self.cifar_c_dir is None:
            raise UsageError("--download needs --cifar-c-dir DIR (where to put the archive)")
        NetBounds(self.timeout)  # checks --timeout
        check_device(self.device)
        require_int("--steps", self.steps, 1)
        require_int("--batch-size", self.batch_size, 1)
        require_int("--calib-images", self.calib_images, 2)
        require_int("--recalibrate-bn", self.recalibrate_bn, 0)
        require_int("--seed", self.seed, 0)
        for name, v in (("--max-images", self.max_images), ("--image-size", self.image_size)):
            if v is not None:
                require_int(name, v, 1)
        for v in self.lmbds:
            require_finite("--lambdas", v)
        if not self.eps:
            raise UsageError("--eps needs at least one value")
        for v in self.eps:
            require_finite("--eps", v)
        if self.step_size is not None:
            require_finite("--step-size", self.step_size, strict=True)
        names = self._parse_corruptions()  # names and levels are checked here, once, before anything runs
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_levels", parse_levels(self.severities, names, self.protocol))

    def on_device(self, device: str) -> "RobustOptions":
        """A copy with ``device`` replaced by the resolved one (``auto`` → ``cuda``/``cpu``), not checked again:
        every value was checked at construction."""
        new = copy.copy(self)
        object.__setattr__(new, "device", device)
        return new

    @property
    def wants_auto_lmbd(self) -> bool:
        """Per-sample λ asked for (``--auto-lambda`` or ``--lambda-fit FILE``)."""
        return self.auto_lmbd or self.lmbd_fit is not None

    @property
    def is_library_attack(self) -> bool:
        """The attack comes from pyautoattack (the ``attacks`` extra)."""
        return self.attack in LIBRARY_ATTACKS

    def corruption_names(self) -> list[str]:
        """The corruptions to run, in order (default: ``noise``; sdnet-noise: its four noises)."""
        return list(self._names)  # type: ignore[attr-defined]

    def _parse_corruptions(self) -> list[str]:
        default = ",".join(SDNET_LEVELS) if self.protocol == "sdnet-noise" else "noise"
        names = parse_corruptions(self.corruptions or default)
        if self.protocol == "sdnet-noise":
            bad = [c for c in names if c not in SDNET_LEVELS]
            if bad:
                raise UsageError(f"the sdnet-noise protocol has only {', '.join(SDNET_LEVELS)}; not {', '.join(bad)}")
        return names

    def levels(self) -> dict[str, tuple[int, ...]]:
        """Levels to run per corruption (``--severities``, per protocol)."""
        return dict(self._levels)  # type: ignore[attr-defined]

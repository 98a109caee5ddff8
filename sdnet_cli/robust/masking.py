"""Checks for gradient masking (Athalye et al. 2018; Carlini et al. 2019, "On Evaluating Adversarial Robustness").

Each check compares robust accuracies (%) measured on the same images against the same defence:

- ``large_eps``: at a radius that allows any image to be replaced (ℓ∞ ε = 0.5), a white-box attack must
  drive accuracy to ~0 (≤ ``LARGE_EPS_MAX`` %);
- ``more_steps``: PGD with 4× the steps and 2 restarts must not be *more* accurate than PGD;
- ``black_box``: the black-box Square attack must not be stronger than the white-box attack;
- ``single_step``: single-step FGSM must not be stronger than multi-step PGD.

"Not stronger" allows one image or ``TOLERANCE`` points, whichever is larger (the attacks are random).
A masked model — e.g. a non-differentiable quantisation in front, whose gradient is zero — passes a
gradient attack untouched yet falls to Square or to large radii: one of the checks fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

LARGE_EPS = 0.5
LARGE_EPS_MAX = 10.0
TOLERANCE = 1.0


@dataclass(frozen=True)
class Check:
    """One gradient-masking check: what was compared, whether it holds, and the numbers."""

    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _slack(n: int) -> float:
    return max(TOLERANCE, 100.0 / max(n, 1))


def masking_checks(acc: dict[str, float], n: int) -> list[Check]:
    """The checks of the module doc from accuracies ``acc`` (%) on ``n`` images: keys ``pgd`` (multi-step
    white-box), ``pgd_more`` (more steps + restarts), ``fgsm``, ``square``, ``large_eps`` (white-box at
    :data:`LARGE_EPS`), and optionally ``white_box`` (the strongest white-box attack run; default ``pgd``)."""
    tol = _slack(n)
    white = min(acc.get("white_box", acc["pgd"]), acc["pgd"])
    checks = [
        Check("large_eps", acc["large_eps"] <= LARGE_EPS_MAX,
              f"white-box accuracy at ε={LARGE_EPS:g} is {acc['large_eps']:.1f} % (must be <= {LARGE_EPS_MAX:g} %)"),
        Check("more_steps", acc["pgd_more"] <= acc["pgd"] + tol,
              f"PGD with 4x steps and 2 restarts {acc['pgd_more']:.1f} % vs PGD {acc['pgd']:.1f} % (must not be higher)"),
        Check("black_box", acc["square"] >= white - tol,
              f"black-box Square {acc['square']:.1f} % vs white-box {white:.1f} % (must not be lower)"),
        Check("single_step", acc["fgsm"] >= acc["pgd"] - tol,
              f"single-step FGSM {acc['fgsm']:.1f} % vs multi-step PGD {acc['pgd']:.1f} % (must not be lower)"),
    ]
    return checks


def all_passed(checks: list[Check]) -> bool:
    """Whether every check holds."""
    return all(c.passed for c in checks)

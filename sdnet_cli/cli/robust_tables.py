"""Rendering of a :class:`~sdnet_cli.robust.RobustReport` for the terminal (rich; fits 80 columns).

Everything is printed as rich ``Text`` (styled lines from our own templates, user values escaped), so the
output is the same on a console that reads markup and on one that does not.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

LEGEND = ("accuracy %: λ₀ = at the training λ; best = at the best λ of the sweep (λ*, an oracle chosen on "
          "the test images); auto = at the per-sample λ (mean λ̄); err = first-layer ‖x−Dz‖² at λ₀")


class Bar:
    """Adapter from the library's progress protocol to a rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(escape(description), total=max(total, 1))

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def condition_table(report: dict[str, Any], summary: dict[str, Any], title: str) -> Table:
    """Per (corruption, severity): accuracy at λ₀, best λ, per-sample λ; then the means."""
    t = Table(title=Text(title), box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    t.add_column("corruption", no_wrap=True)
    for col in ("sev", "λ₀", "best", "λ*", "auto", "λ̄", "err"):
        t.add_column(col, justify="right", no_wrap=True)
    for c in summary["per_condition"]:
        sev = "-" if c["severity"] == 0 else str(c["severity"])
        if "param" in c:
            sev += f" ({c['param']:g})"
        t.add_row(Text(c["corruption"]), sev, _fmt(c["acc_train"]), _fmt(c["acc_best"]), _fmt(c["best_lambda"], "g"),
                  _fmt(c["acc_auto"]), _fmt(c["auto_lambda_mean"], ".2f"), _fmt(c["recon_error_train"], ".3g"))
    m = summary["means"]
    t.add_section()
    t.add_row("mean corrupted", "", _fmt(m["train"]["mean"]), _fmt(m["best"]["mean"]), "", _fmt(m["auto"]["mean"]), "", "")
    if m["train"]["complete"]:
        t.add_row("RobustBench 75", "", _fmt(m["train"]["robustbench"]), _fmt(m["best"]["robustbench"]), "",
                  _fmt(m["auto"]["robustbench"]), "", "")
    return t


def _defence(a: dict[str, Any]) -> str:
    if a["mode"] == "auto":
        return f"per-sample λ̄ {a['lambda']:.2f}, " + ("adaptive" if a.get("adaptive") else "non-adaptive")
    if a["lambda"] is None:
        return "as trained"
    return f"λ {a['lambda']:g}" + (" (training)" if a["mode"] == "train" else "")


def attack_table(report: dict[str, Any]) -> Table | None:
    """Robust accuracy per ε and defence (RobustBench style; ε = 0 is clean accuracy)."""
    rows = report["summary"].get("attack", [])
    if not rows:
        return None
    t = Table(title=Text(f"{report['model']}: {rows[0]['attack']} ({rows[0].get('norm') or 'linf'})"), box=box.SIMPLE_HEAD)
    for col in ("ε", "defence", "robust acc %"):
        t.add_column(col, justify="right" if col != "defence" else "left", no_wrap=True)
    for a in rows:
        t.add_row(f"{a['eps']:.4g}", _defence(a), _fmt(a["accuracy"]))
    return t


def _print_checks(report: dict[str, Any], console: Console) -> None:
    for c in report.get("masking_checks", []):
        head = f"masking checks, {_defence(c)}, ε={c['eps']:.4g}:"
        if c["passed"]:
            console.print(Text.from_markup(f"[green]{escape(head)} all {len(c['checks'])} hold[/]"))
        else:
            console.print(Text.from_markup(f"[bold red]GRADIENT MASKING SUSPECTED — {escape(head)}[/]"))
        for k in c["checks"]:
            mark = "[green]ok[/]  " if k["passed"] else "[bold red]FAIL[/]"
            console.print(Text.from_markup(f"  {mark} {escape(k['name'])}: {escape(k['detail'])}"))
        for note in c.get("notes", []):
            console.print(Text.from_markup(f"  [yellow]note:[/] {escape(note)}"))


def _print_fit(report: dict[str, Any], console: Console) -> None:
    fit = report.get("lambda_fit")
    if not fit:
        return
    q = fit.get("quality") or {}
    quality = f", R² {q['r2']:.2f}, RMS residual {q['rms_residual']:.3f} λ" if q else ""
    cal = fit.get("calibration") or {}
    where = f" on {cal['images']} images ({cal.get('split', 'held out')})" if cal.get("images") is not None else ""
    sign = "−" if fit["intercept"] < 0 else "+"
    console.print(Text(f"λ fit: λ = {fit['slope']:.4g}·r {sign} {abs(fit['intercept']):.4g}, clipped to "
                       f"[{fit['lmbd_min']:g}, {fit['lmbd_max']:g}]{quality}{where}"), soft_wrap=True)


def render_model(rep: dict[str, Any], console: Console) -> None:
    """Tables and notes of one model's report."""
    title = f"{rep['model']} ({rep['architecture']}, training λ {_fmt(rep['training_lambda'], 'g')})"
    console.print(condition_table(rep, rep["summary"], title))
    if "summary_bn" in rep:
        b = rep["bn_recalibration"]
        console.print(condition_table(rep, rep["summary_bn"], f"{rep['model']}: BatchNorm re-estimated at each λ "
                                                              f"on {b['images']} held-out images"))
    console.print(Text(LEGEND, style="dim"), soft_wrap=True)
    at = attack_table(rep)
    if at is not None:
        console.print(at)
    _print_checks(rep, console)
    _print_fit(rep, console)
    if rep.get("selection"):
        console.print(Text(f"selection: {rep['selection']['text']}"), soft_wrap=True)
    for note in rep["notes"]:
        console.print(Text.from_markup(f"[yellow]note:[/] {escape(note)}"), soft_wrap=True)
    g = rep["summary"]["gains"]
    parts = [f"{what} {g[key]:+.1f} points" for what, key in (("best λ (oracle)", "best_minus_train"),
                                                                ("per-sample λ", "auto_minus_train"))
             if g[key] is not None and (key != "best_minus_train" or rep["lambdas"])]
    if parts:
        console.print(Text(f"{rep['model']}: mean gain over the training λ — " + ", ".join(parts)))


def render(report: Any, console: Console) -> None:
    """Every model's tables, then where the files went."""
    for rep in report.models:
        render_model(rep, console)
    console.print(Text(f"wrote {report.output} ({report.seconds:.0f} s)"))

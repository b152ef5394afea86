"""The fit report (:func:`gradfit.analysis.report.report_dict`) drawn as rich tables for the CLI.

Parameters with ``value ± stderr``, relative error and confidence interval; the statistics; the
flagged correlations; warnings in yellow. User text (parameter names such as ``a[0]``, messages)
goes in as :class:`rich.text.Text`, never as markup, so brackets come out as written.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["print_report_tables"]

_STATS = (("chisqr", "chi-square"),  # weighted fits only
          ("rss", "RSS"), ("r2", "R²"), ("redchi", "reduced chi-square"), ("nll", "NLL (summed loss)"),
          ("aic", "AIC"), ("bic", "BIC"))


def print_report_tables(console: Console, report: dict) -> None:
    """Print ``report`` (a :func:`~gradfit.analysis.report.report_dict`) on ``console``.

    Examples
    --------
    >>> from rich.console import Console
    >>> print_report_tables(Console(), report_dict(result))  # doctest: +SKIP
    """
    console.print(_parameters(report))
    console.print(_statistics(report))
    for c in report.get("correlations", ()):
        console.print(Text(f"{c['a']} and {c['b']} are correlated (r = {c['r']:.3f})", style="yellow"), soft_wrap=True)
    for w in report.get("warnings", ()):
        console.print(Text(f"warning: {w}", style="yellow"), soft_wrap=True)


def _parameters(report: dict) -> Table:
    u = report.get("uncertainty") or {}
    level = f"{100 * u['level']:g}% interval" if u.get("level") else "interval"
    table = Table(show_edge=False, pad_edge=False, title_justify="left")
    table.add_column("parameter")
    table.add_column("value ± stderr", justify="right")
    table.add_column("rel. error", justify="right")
    table.add_column(level, justify="right")
    for r in report["parameters"]:
        name = Text(r["name"] + (" (fixed)" if r["fixed"] else " (at bound)" if r["at_bound"] else ""))
        value = _g(r["value"]) + (f" ± {_g(r['stderr'], 4)}" if r["stderr"] is not None else "")
        rel = f"{r['rel_err']:.2f}%" if r["rel_err"] is not None else ""
        ci = f"[{_g(r['ci_low'], 5)}, {_g(r['ci_high'], 5)}]" if r["ci_low"] is not None else ""
        table.add_row(name, Text(value), Text(rel), Text(ci))
    return table


def _statistics(report: dict) -> Table:
    st = report.get("statistics", {})
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("points / free parameters", f"{st.get('n')} / {st.get('p')}")
    grid.add_row(f"final loss ({report.get('loss_name')})", _g(report.get("loss")))
    for key, label in _STATS:
        if st.get(key) is not None:
            grid.add_row(label, _g(st[key]))
    if report.get("statistics_note"):
        grid.add_row("", Text(f"({report['statistics_note']})", style="dim"))
    grid.add_row("steps", str(report.get("steps")))
    grid.add_row("stopped", Text(f"{report.get('stop_reason')}: {report.get('message')}"))
    return grid


def _g(v, digits: int = 6) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"

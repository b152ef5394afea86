"""The fit report (:func:`gradfit.analysis.report.report_dict`) drawn as rich tables for the CLI.

Parameters with ``value ± stderr``, relative error and confidence interval (or, for a model with
more than a few dozen parameters, one row per tensor: shape, norm, mean, spread); the statistics;
the metrics on the training and validation rows with the confusion matrices of a classifier; the
flagged correlations; warnings in yellow. User text (parameter names such as ``a[0]``, messages)
goes in as :class:`rich.text.Text`, never as markup, so brackets come out as written.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gradfit.analysis.report_sections import METRIC_ROWS, SHOWN_CLASSES, shape_text

__all__ = ["print_report_tables"]

_STATS = (
    ("chisqr", "chi-square"),  # weighted fits only
    ("rss", "RSS"),
    ("r2", "R²"),
    ("redchi", "reduced chi-square"),
    ("nll", "NLL (summed loss)"),
    ("aic", "AIC"),
    ("bic", "BIC"),
)


def print_report_tables(console: Console, report: dict) -> None:
    """Print ``report`` (a :func:`~gradfit.analysis.report.report_dict`) on ``console``.

    Examples
    --------
    >>> from rich.console import Console
    >>> print_report_tables(Console(), report_dict(result))  # doctest: +SKIP
    """
    console.print(_parameters(report) if report.get("tensors") is None else _tensors(report))
    console.print(_statistics(report))
    metrics = report.get("metrics")
    if metrics and metrics.get("train"):
        console.print(_metrics(metrics))
        for title in ("train", "validation"):
            matrix = _confusion(metrics.get(title))
            if matrix is not None:
                console.print(
                    Text(f"confusion matrix, {title} (rows: true class, columns: predicted class)", style="bold"),
                    soft_wrap=True,
                )
                console.print(matrix)
    elif metrics and metrics.get("error"):
        console.print(Text(f"metrics: {metrics['error']}", style="yellow"), soft_wrap=True)
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


def _tensors(report: dict) -> Table:
    """A large model's parameters, one row per tensor (its values only when it is small)."""
    tensors = report["tensors"]
    n = report.get("n_params", sum(t["size"] for t in tensors))
    table = Table(
        show_edge=False,
        pad_edge=False,
        title_justify="left",
        title=f"{n:,} parameters in {len(tensors)} tensors (every value is in result.json)",
    )
    for name in ("tensor", "shape", "norm", "mean", "std", "min", "max", "values"):
        table.add_column(name, justify="left" if name in ("tensor", "shape", "values") else "right")
    for t in tensors:
        values = "" if t.get("values") is None else "[" + ", ".join(_g(v, 5) for v in t["values"]) + "]"
        stats = (_g(t[k], 5) for k in ("norm", "mean", "std", "min", "max"))
        table.add_row(Text(t["name"]), shape_text(t["shape"]), *stats, Text(values))
    return table


def _metrics(metrics: dict) -> Table:
    """Regression (R², RMSE, MAE) or classification (accuracy, log-loss) metrics, train and validation."""
    train, val = metrics["train"], metrics.get("validation")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("metric")
    table.add_column("train", justify="right")
    if val:
        table.add_column("validation", justify="right")
    for key, label in METRIC_ROWS.get(metrics.get("task", ""), ()):  # no task: no rows
        if key in train:
            table.add_row(label.replace("R-squared", "R²"), _g(train.get(key)), *([_g(val.get(key))] if val else []))
    note = next((part["note"] for part in (train, val) if part and part.get("note")), None)
    if note:
        table.caption = f"({note})"
    return table


def _confusion(part: dict | None) -> Table | None:
    part = part or {}
    m = part.get("confusion_matrix")
    if not m or len(m) > SHOWN_CLASSES:
        return None
    labels = [str(v) for v in part.get("labels", range(len(m)))]
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("true")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, m):
        table.add_row(label, *(str(v) for v in row))
    return table


def _statistics(report: dict) -> Table:
    st = report.get("statistics", {})
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("points / free parameters", f"{st.get('n')} / {st.get('p')}")
    grid.add_row(f"final loss ({report.get('loss_name')})", _g(report.get("loss")))
    shown = report.get("metrics") or {}
    for key, label in _STATS:
        if key == "r2" and (shown.get("train") or {}).get("r2") is not None:
            continue  # the metrics table shows it, next to the validation R²
        if st.get(key) is not None:
            grid.add_row(label, _g(st[key]))
    if report.get("statistics_note"):
        grid.add_row("", Text(f"({report['statistics_note']})", style="dim"))
    grid.add_row("steps", str(report.get("steps")))
    grid.add_row("stopped", Text(f"{report.get('stop_reason')}: {report.get('message')}"))
    return grid


def _g(v, digits: int = 6) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"

"""The report's rich tables, recorded to text: parameters with ± and relative error, statistics, warnings."""

import numpy as np
import pytest
from rich.console import Console

import gradfit
from gradfit.analysis.report import report_dict
from gradfit.analysis.uncertainty import uncertainty_of
from gradfit.cli.report_view import print_report_tables


def _render(report) -> Console:
    console = Console(record=True, width=200, color_system="truecolor", force_terminal=True)
    print_report_tables(console, report)
    return console


@pytest.fixture(scope="module")
def fitted():
    x = np.linspace(0, 1, 30)
    d = {"x": x, "y": 3 * x - 1 + 0.05 * np.cos(11 * x)}
    r = gradfit.fit("a*x + c", d, y="y", optimizer="lbfgs", steps=50, dtype="float64")
    return r, d


def test_parameters_and_statistics_are_shown(fitted):
    r, d = fitted
    u = uncertainty_of(r, d)
    rep = report_dict(r, u, d)
    text = _render(rep).export_text()
    for name, value in r.flat_params.items():
        se = u[name]
        assert f"{value:.6g} ± {se:.4g}" in text
        assert f"{100 * se / abs(value):.2f}%" in text
    assert "95% interval" in text and f"{rep['statistics']['r2']:.6g}" in text and "30 / 2" in text
    assert "warning" not in text


def test_warnings_are_yellow_and_brackets_survive():
    x = np.linspace(0, 1, 20)
    d = {"x": x, "y": 2 * x + 1}
    r = gradfit.fit("linear", d, y="y", lr=0.01, steps=20)  # parameters named a[0], a[1]; far from converged
    console = _render(report_dict(r, data=d))
    text = console.export_text(clear=False)
    assert "a[0]" in text and "a[1]" in text
    assert "warning: Not converged" in text
    html = console.export_html(inline_styles=True)
    assert "warning: Not converged" in html and "color: #808000" in html  # rich's "yellow"


def test_unavailable_uncertainties_leave_the_columns_empty():
    d = {"x": np.array([0.0, 1.0]), "y": np.array([1.0, 3.0])}
    r = gradfit.fit("a*x + c", d, y="y", steps=5)
    text = _render(report_dict(r, data=d)).export_text()
    rows = [line for line in text.splitlines() if line.startswith(("a ", "c "))]
    assert len(rows) == 2 and not any("±" in line for line in rows) and "No degrees of freedom" in text

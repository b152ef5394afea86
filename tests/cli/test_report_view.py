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


def test_metrics_table_shows_train_and_validation_and_r2_once():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 80)
    d = {"x": x, "y": 3 * x + rng.normal(scale=0.2, size=80)}
    r = gradfit.fit("a*x + c", d, y="y", optimizer="lbfgs", steps=30, dtype="float64", val_split=0.25)
    text = _render(report_dict(r)).export_text()
    cells = [[c.strip() for c in line.split("│")] for line in text.splitlines() if "│" in line]
    rows = {c[0]: c[1:] for c in cells}
    for key, label in (("r2", "R²"), ("rmse", "RMSE"), ("mae", "MAE")):
        assert rows[label] == [f"{r.metrics['train'][key]:.6g}", f"{r.metrics['validation'][key]:.6g}"]
    assert text.count("R²") == 1  # the statistics grid leaves it to the metrics table


def test_confusion_matrix_and_accuracy_of_a_classifier():
    from gradfit.data.io import read_table

    frame = read_table("builtin:blobs")
    r = gradfit.fit(
        "logistic", frame, y="label", loss="bce", optimizer="lbfgs", steps=3, val_split=0.25, dtype="float64"
    )
    text = _render(report_dict(r)).export_text()
    assert "confusion matrix, train (rows: true class, columns: predicted class)" in text
    assert "confusion matrix, validation" in text
    rows = [line for line in text.splitlines() if "│" in line]
    acc = next(line for line in rows if line.startswith("accuracy"))
    assert [c.strip() for c in acc.split("│")[1:]] == [
        f"{r.metrics['train']['accuracy']:.6g}",
        f"{r.metrics['validation']['accuracy']:.6g}",
    ]
    counts = [[int(c) for c in line.split("│")[1:]] for line in rows if line.split("│")[0].strip() in ("0", "1")]
    assert counts[:2] == r.metrics["train"]["confusion_matrix"]
    assert counts[2:] == r.metrics["validation"]["confusion_matrix"]


def test_large_model_is_shown_per_tensor():
    x = np.linspace(-1, 1, 50)
    r = gradfit.fit(
        "mlp", {"x": x, "y": x**2}, y="y", model_options={"hidden": (24,)}, optimizer="adam", lr=0.01, steps=10
    )
    text = _render(report_dict(r)).export_text()
    assert "W0[0,0]" not in text.split("warning:")[0]
    assert f"{len(r.flat_params)} parameters in 4 tensors" in text and len(r.flat_params) == 73
    w1 = next(line for line in text.splitlines() if line.startswith("W1"))
    cells = [c.strip() for c in w1.split("│")]
    assert cells[1] == "24x1" and cells[2] == f"{float(r.params['W1'].double().norm()):.5g}"

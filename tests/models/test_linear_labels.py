"""The zoo linear model's coefficients are named after their columns; the index form still names them.

Oracle: statsmodels' OLS on scikit-learn's diabetes data (its coefficients are named by column too).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch
from sklearn.datasets import load_diabetes
from typer.testing import CliRunner

import gradfit
from gradfit.analysis.landscape import compute_landscape
from gradfit.analysis.report import fit_report
from gradfit.cli.app import app
from gradfit.errors import ModelError
from gradfit.models.base import ParamSpec, unflatten_params
from gradfit.models.zoo import coefficient_labels, make_zoo_model
from gradfit.outputs import load_run, save_run

DIABETES = load_diabetes(as_frame=True).frame
COLUMNS = [c for c in DIABETES.columns if c != "target"]
LSQ = dict(optimizer="lbfgs", dtype="float64", steps=60)


@pytest.fixture(scope="module")
def ols():
    return sm.OLS(DIABETES["target"], sm.add_constant(DIABETES[COLUMNS])).fit()


@pytest.fixture(scope="module")
def fitted():
    return gradfit.fit("linear", DIABETES, y="target", **LSQ)


def test_coefficients_are_named_after_their_columns_and_equal_ols(fitted, ols):
    names = [f"a[{c}]" for c in COLUMNS] + ["a[intercept]"]
    assert list(fitted.flat_params) == names
    expected = [ols.params[c] for c in COLUMNS] + [ols.params["const"]]
    np.testing.assert_allclose(list(fitted.flat_params.values()), expected, rtol=1e-6)
    u = fitted.uncertainty
    assert list(u["names"]) == names  # standard errors by the same names, equal to statsmodels'
    np.testing.assert_allclose(u["stderr"], [ols.bse[c] for c in COLUMNS] + [ols.bse["const"]], rtol=1e-4)


def test_one_scheme_in_result_json_history_csv_and_the_report(fitted, tmp_path):
    names = list(fitted.flat_params)
    paths = save_run(fitted, tmp_path)
    saved = json.loads(paths["result"].read_text())
    assert list(saved["params"]) == names and list(saved["init_params"]) == names
    assert pd.read_csv(paths["history"]).columns.tolist()[-len(names) :] == names
    text = fit_report(fitted)
    assert all(n in text for n in names) and "a[0]" not in text
    back = load_run(tmp_path)
    assert back.flat_params == fitted.flat_params and back.flat_params["a[2]"] == fitted.flat_params["a[bmi]"]


def test_the_index_form_names_the_same_entries_everywhere():
    by_index = gradfit.fit("linear", DIABETES, y="target", init={"a[2]": 100.0}, bounds={"a[3]": (None, 300.0)}, **LSQ)
    by_label = gradfit.fit(
        "linear", DIABETES, y="target", init={"a[bmi]": 100.0}, bounds={"a[bp]": (None, 300.0)}, **LSQ
    )
    assert by_index.init_params == by_label.init_params and by_index.init_params["a[bmi]"] == 100.0
    assert by_index.bounds == by_label.bounds == {"a[bp]": [None, 300.0]}
    assert by_index.flat_params == by_label.flat_params
    assert by_index.flat_params["a[bp]"] == pytest.approx(300.0) and "a[bp]" in by_index.diagnostics["at_bounds"]
    flat = by_index.flat_params
    assert flat["a[3]"] == flat["a[bp]"] and flat.get("a[10]") == flat["a[intercept]"] and "a[0]" in flat
    assert flat.get("a[11]") is None and "a[11]" not in flat
    with pytest.raises(KeyError):
        flat["a[11]"]
    land = compute_landscape(by_index, DIABETES, params=("a[2]", "a[bp]"), n=5)
    assert land.names == ("a[bmi]", "a[bp]")


def test_an_entry_named_twice_or_a_label_that_is_not_one_is_refused():
    with pytest.raises(ModelError, match=r"initial value of 'a\[age\]' is given twice \(as 'a\[0\]' and 'a\[age\]'\)"):
        gradfit.fit("linear", DIABETES, y="target", init={"a[0]": 1.0, "a[age]": 2.0}, steps=0)
    with pytest.raises(ModelError, match=r"bound on 'a\[bmi\]' is given twice"):
        gradfit.fit("linear", DIABETES, y="target", bounds={"a[bmi]": (0, 1), "a[2]": (0, 2)}, steps=0)
    with pytest.raises(
        ModelError,
        match=r"'a\[BMI\]' names no entry of the parameter 'a'\. Its entries are: a\[age\], "
        r"a\[sex\], .*or by position, a\[0\], a\[1\]",
    ):
        gradfit.fit("linear", DIABETES, y="target", init={"a[BMI]": 1.0}, steps=0)


def test_the_seeds_column_x_and_unnamed_arrays_keep_the_index_names():
    # Seeds 000/001: y = x @ a, a[0] the slope and a[1] the intercept; labels would say nothing more.
    assert list(gradfit.fit("linear", "builtin:linear", y="y", steps=0).flat_params) == ["a[0]", "a[1]"]
    X = np.random.default_rng(0).normal(size=(20, 2))
    r = gradfit.fit("linear", (X, X @ [1.0, 2.0] + 3), steps=0)  # columns x0, x1
    assert list(r.flat_params) == ["a[0]", "a[1]", "a[2]"]
    one = gradfit.fit("linear", DIABETES, x="bmi", y="target", **LSQ)  # a real column: named, even alone
    assert list(one.flat_params) == ["a[bmi]", "a[intercept]"]
    slope, intercept = np.polyfit(DIABETES["bmi"], DIABETES["target"], 1)
    np.testing.assert_allclose(list(one.flat_params.values()), [slope, intercept], rtol=1e-7)


@pytest.mark.parametrize(
    "inputs,labels",
    [
        (["bmi", "bp"], ("bmi", "bp", "intercept")),
        (["body mass", "CO2 (ppm)"], ("body mass", "CO2 (ppm)", "intercept")),
        (["x"], None),
        (["x0", "x1"], None),
        (["bmi", "intercept"], None),  # would name two entries a[intercept]
        (["a[1]", "b"], None),
        (["3", "b"], None),
        (["p,q", "b"], None),
        (["p=q", "b"], None),
        ([" b", "c"], None),
    ],
)
def test_labels_only_where_they_can_be_read_back(inputs, labels):
    assert coefficient_labels(inputs) == labels
    model = make_zoo_model("linear", inputs)
    expected = [f"a[{n}]" for n in labels] if labels else [f"a[{i}]" for i in range(len(inputs) + 1)]
    assert model.flat_names() == expected


def test_logistic_weights_are_labelled_and_several_outputs_are_not():
    assert make_zoo_model("logistic", ["bmi", "bp"]).flat_names() == ["w[bmi]", "w[bp]", "w[intercept]"]
    assert make_zoo_model("linear", ["bmi", "bp"], n_outputs=2).flat_names()[:2] == ["a[0,0]", "a[0,1]"]


def test_runs_saved_with_index_names_still_load():
    spec = ParamSpec("a", (3,), 0.0, labels=("bmi", "bp", "intercept"))
    out = unflatten_params([spec], {"a[0]": 1.0, "a[1]": 2.0, "a[2]": 3.0})
    torch.testing.assert_close(out["a"], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def test_the_cli_takes_either_form_and_prints_the_labels(tmp_path):
    path = tmp_path / "diabetes.csv"
    DIABETES[["bmi", "bp", "target"]].to_csv(path, index=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "fit",
            str(path),
            "--y",
            "target",
            "--model",
            "linear",
            "--optimizer",
            "lbfgs",
            "--dtype",
            "float64",
            "--steps",
            "50",
            "--init",
            "a[bmi]=500,a[1]=300",
            "--bound",
            "a[2]=0:",
            "--landscape",
            "a[0],a[bp]",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads((out / "result.json").read_text())
    assert list(d["params"]) == ["a[bmi]", "a[bp]", "a[intercept]"] and d["bounds"] == {"a[intercept]": [0.0, None]}
    assert d["init_params"] == {"a[bmi]": 500.0, "a[bp]": 300.0, "a[intercept]": 0.0}
    assert "a[bmi]" in res.stdout and "a[intercept]" in res.stdout and (out / "landscape.png").exists()
    X = np.column_stack([DIABETES["bmi"], DIABETES["bp"], np.ones(len(DIABETES))])
    np.testing.assert_allclose(
        list(d["params"].values()), np.linalg.lstsq(X, DIABETES["target"], rcond=None)[0], rtol=1e-6
    )

"""sum() and mean() in a formula are over all the rows the model is fitted on, whatever the chunking.

The fit evaluates rows in chunks of 65,536 (and mini-batches), so a reduction computed inside each
evaluation would be a chunk's or a batch's: issue 9 found ``a*(x - mean(x)) + b`` on 131,072 rows
ending at loss 0.0625 instead of 0, exit 0. The oracle is numpy over all rows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import gradfit
from gradfit.analysis.uncertainty import training_data
from gradfit.cli.app import app
from gradfit.errors import FormulaError, ModelError
from gradfit.models.formula_model import FormulaModel
from gradfit.outputs import load_run

runner = CliRunner()
N = 131_072  # two chunks of 65,536 rows


@pytest.fixture(scope="module")
def centred():
    """x whose two chunks have different means (0.25 and 0.75), y exactly on the centred line."""
    x = np.arange(N) / N
    return {"x": x, "y": 2.0 * (x - x.mean()) + 3.0}


def test_the_issue_example_reaches_loss_zero_over_two_chunks(centred):
    r = gradfit.fit("a*(x - mean(x)) + b", centred, y="y", optimizer="lm")
    assert r.success and r.loss < 1e-20
    assert r.flat_params["a"] == pytest.approx(2.0, abs=1e-9) and r.flat_params["b"] == pytest.approx(3.0, abs=1e-9)
    (saved,) = r.model_spec["aggregates"]
    assert saved["text"] == "mean(x)" and saved["value"] == pytest.approx(centred["x"].mean(), rel=1e-15)


def test_mini_batches_see_the_mean_of_every_row_not_of_the_batch(centred):
    r = gradfit.fit("a*(x - mean(x)) + b", centred, y="y", optimizer="adam", lr=0.02, batch_size=1024, epochs=3)
    assert r.model_spec["aggregates"][0]["value"] == pytest.approx(centred["x"].mean(), rel=1e-7)
    # The oracle: the least-squares line in the centred column over all rows.
    X = np.column_stack([centred["x"] - centred["x"].mean(), np.ones(N)])
    a, b = np.linalg.lstsq(X, centred["y"], rcond=None)[0]
    assert r.flat_params["a"] == pytest.approx(a, abs=2e-3) and r.flat_params["b"] == pytest.approx(b, abs=2e-3)


def test_sum_and_nested_reductions_match_numpy_over_all_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 2.0, N)
    y = 1.5 * (x - x.mean()) / x.std() + 0.5 * x / x.sum()
    r = gradfit.fit(
        "a*(x - mean(x))/sqrt(mean((x - mean(x))**2)) + c*x/sum(x)", {"x": x, "y": y}, y="y", optimizer="lm"
    )
    values = {a["text"]: a["value"] for a in r.model_spec["aggregates"]}
    assert values["mean(x)"] == pytest.approx(x.mean(), rel=1e-12)
    assert values["mean((x - mean(x))**2)"] == pytest.approx(x.var(), rel=1e-12)
    assert values["sum(x)"] == pytest.approx(x.sum(), rel=1e-12)
    assert r.flat_params["a"] == pytest.approx(1.5, rel=1e-8) and r.flat_params["c"] == pytest.approx(0.5, rel=1e-6)


def test_float32_data_are_summed_in_float64():
    x = (np.arange(3 * 65_536, dtype=np.float32) % 1000 + 1e4).astype(np.float32)
    m = FormulaModel("a*mean(x)", columns=["x"]).with_data(torch.from_numpy(x)[:, None])
    assert m.aggregates[0] == pytest.approx(float(np.mean(x.astype(np.float64))), rel=1e-12)


def test_with_data_leaves_the_model_it_was_called_on_alone():
    m = FormulaModel("a*(x - mean(x))", columns=["x"])
    bound = m.with_data(torch.tensor([[1.0], [3.0]]))
    assert m.aggregates is None and bound.aggregates == {0: 2.0}
    assert FormulaModel("a*x + b", columns=["x"]).with_data(torch.ones(3, 1)).aggregates is None  # nothing to keep


def test_a_validation_split_keeps_the_mean_of_the_training_rows(centred):
    r = gradfit.fit("a*(x - mean(x)) + b", centred, y="y", optimizer="lm", val_split=0.3)
    train = training_data(r, centred)
    assert r.model_spec["aggregates"][0]["value"] == pytest.approx(float(train.x.double().mean()), rel=1e-12)


def test_a_saved_run_predicts_new_rows_with_the_training_mean(tmp_path, centred):
    res = runner.invoke(
        app,
        [
            "fit",
            str(_csv(tmp_path, centred)),
            "--y",
            "y",
            "--model",
            "a*(x - mean(x)) + b",
            "--optimizer",
            "lm",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "run" / "result.json").read_text())["model"]["aggregates"]
    assert saved[0]["value"] == pytest.approx(centred["x"].mean(), rel=1e-12)
    loaded = load_run(tmp_path / "run")
    new = np.array([0.0, 10.0])  # a mean of its own of 5: the prediction must still centre on the training mean
    pred = loaded.predict({"x": new})
    a, b = loaded.flat_params["a"], loaded.flat_params["b"]
    np.testing.assert_allclose(np.asarray(pred), a * (new - centred["x"].mean()) + b, rtol=1e-6)


def test_a_resumed_fit_ends_where_an_uninterrupted_one_does(tmp_path, centred):
    options = dict(y="y", optimizer="adam", lr=0.01, batch_size=4096, seed=3)
    whole = gradfit.fit("a*(x - mean(x)) + b", centred, steps=40, **options)
    gradfit.fit("a*(x - mean(x)) + b", centred, steps=20, checkpoint_every=10, checkpoint_dir=tmp_path, **options)
    resumed = gradfit.fit("a*(x - mean(x)) + b", centred, steps=40, resume=tmp_path, **options)
    assert resumed.flat_params == whole.flat_params and resumed.model_spec == whole.model_spec


@pytest.mark.parametrize(
    "formula, reduction, params",
    [
        ("sum(a*x) + b", "sum(a*x)", "parameter a"),
        ("x/mean(exp(k*x))", "mean(exp(k*x))", "parameter k"),
        ("mean(x*mean(a*x))", "mean(a*x)", "parameter a"),
    ],
)
def test_a_reduction_over_rows_that_depends_on_a_parameter_is_refused_with_a_caret(formula, reduction, params):
    with pytest.raises(FormulaError) as err:
        FormulaModel(formula, columns=["x", "y"])
    text = str(err.value)
    assert text.startswith(f"{reduction} runs over rows and depends on the {params}")
    assert "Take the parameters outside" in text
    line, caret = text.splitlines()[-2:]
    start = formula.index(reduction)
    assert caret.strip() == "^" * len(reduction) and caret.index("^") - 4 == start and line.strip() == formula


def test_reductions_of_parameters_or_of_reduced_columns_are_still_allowed():
    m = FormulaModel("sum(a) + b*mean(x) + sum(c*mean(x))", columns=["x"]).with_data(torch.tensor([[1.0], [5.0]]))
    params = {"a": torch.tensor(1.0), "b": torch.tensor(2.0), "c": torch.tensor(3.0)}
    assert m(params, torch.tensor([[100.0]])).tolist() == [1.0 + 2.0 * 3.0 + 3.0 * 3.0]


def test_the_cli_refuses_a_reduction_with_a_parameter(tmp_path, centred):
    res = runner.invoke(
        app,
        ["fit", str(_csv(tmp_path, centred)), "--y", "y", "--model", "sum(a*x) + b", "--out", str(tmp_path / "out")],
    )
    assert res.exit_code == 2, res.output
    assert "sum(a*x) runs over rows and depends on the parameter a" in res.stderr
    assert not (tmp_path / "out").exists()


def test_the_cli_fits_the_issue_example_with_exit_0(tmp_path, centred):
    res = runner.invoke(
        app,
        [
            "fit",
            str(_csv(tmp_path, centred)),
            "--y",
            "y",
            "--model",
            "a*(x - mean(x)) + b",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["loss"] < 1e-20


def test_saved_aggregates_that_do_not_match_the_formula_are_refused():
    with pytest.raises(ModelError, match=r"saved aggregates of the formula 'a\*mean\(x\)' do not match"):
        FormulaModel.from_description({"formula": "a*mean(x)", "inputs": ["x"], "aggregates": []})


def _csv(tmp_path, data) -> str:
    path = tmp_path / "centred.csv"
    if not path.exists():
        path.write_text("x,y\n" + "".join(f"{x!r},{y!r}\n" for x, y in zip(data["x"].tolist(), data["y"].tolist())))
    return path

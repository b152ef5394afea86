"""``gradfit.fit(..., stream=True)``: a Parquet or CSV file read batch by batch at every pass gives the results of the
same file read whole (every sum over rows is the same), and bad input the same kind of message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.helpers.checkpoints import fit_stopped_at

import gradfit
from gradfit.errors import ConfigError, DataError

FORMULA = "a*exp(-b*x) + c + d*x"
pytestmark = pytest.mark.filterwarnings("ignore:Ran the full budget")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 40_000
    x = np.linspace(0.0, 4.0, n)
    s = 0.02 + 0.1 * rng.random(n)
    frame = pd.DataFrame(
        {
            "x": x,
            "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + s * rng.standard_normal(n),
            "s": s,
            "label": np.where(x > 2, "late", "early"),  # a text column no fit uses
        }
    )
    folder = tmp_path_factory.mktemp("streamed")
    frame.to_parquet(folder / "rows.parquet", row_group_size=7_000)
    frame.to_csv(folder / "rows.csv", index=False)
    return folder


def equal(a, b, rtol):
    assert a.stop_reason == b.stop_reason and a.steps == b.steps
    np.testing.assert_allclose(list(b.flat_params.values()), list(a.flat_params.values()), rtol=rtol, atol=0)
    assert b.loss == pytest.approx(a.loss, rel=max(rtol, 1e-15))


@pytest.mark.parametrize("name", ["rows.parquet", "rows.csv"])
@pytest.mark.parametrize(
    "options, rtol",
    [
        ({"chunk_size": 5_000}, 0.0),  # the automatic choice: Levenberg-Marquardt, float64, the same chunks
        ({"optimizer": "sgd", "lr": 0.05, "steps": 25, "dtype": "float64", "chunk_size": 5_000}, 0.0),
        ({"optimizer": "adam", "steps": 25, "dtype": "float64"}, 1e-12),
        ({"sigma": "s", "absolute_sigma": True}, 1e-10),
    ],
)
def test_a_streamed_file_fits_as_the_file_read_whole(files, name, options, rtol):
    path = files / name
    a = gradfit.fit(FORMULA, path, x="x", y="y", **options)
    b = gradfit.fit(FORMULA, path, x="x", y="y", stream=True, **options)
    equal(a, b, rtol)
    np.testing.assert_allclose(b.uncertainty["stderr"], a.uncertainty["stderr"], rtol=max(rtol, 1e-9))
    assert b.data["n"] == a.data["n"] == 40_000 and b.data["path"] == str(path)
    assert b.data["weights"] == a.data["weights"]


def test_the_inputs_of_a_streamed_formula_are_its_names_that_are_columns(files):
    r = gradfit.fit(FORMULA, files / "rows.parquet", y="y", stream=True, chunk_size=10_000)
    assert r.data["x"] == ["x"] and r.success


def test_a_linear_model_on_a_streamed_file_takes_its_statistics_in_one_pass(files):
    options = {"optimizer": "sgd", "lr": 0.001, "steps": 200, "dtype": "float64"}
    a = gradfit.fit("poly3", files / "rows.parquet", x="x", y="y", **options)
    b = gradfit.fit("poly3", files / "rows.parquet", x="x", y="y", stream=True, **options)
    assert b.diagnostics["row_pass"] == a.diagnostics["row_pass"] == ["sufficient_statistics"]
    equal(a, b, 1e-12)


def test_a_streamed_fit_resumes_where_it_stopped(files, tmp_path):
    options = {"optimizer": "adam", "lr": 0.01, "steps": 30, "dtype": "float64", "stream": True}
    whole = gradfit.fit(FORMULA, files / "rows.csv", x="x", y="y", **options)
    stopped = fit_stopped_at(12, tmp_path, FORMULA, files / "rows.csv", x="x", y="y", **options)
    assert stopped.stop_reason == "interrupted" and 12 <= stopped.steps < 30
    resumed = gradfit.fit(FORMULA, files / "rows.csv", x="x", y="y", resume=tmp_path, **options)
    assert resumed.flat_params == whole.flat_params and resumed.steps == 30


def test_a_changed_file_is_not_resumed(files, tmp_path):
    options = {"optimizer": "adam", "lr": 0.01, "steps": 10, "dtype": "float64", "stream": True}
    fit_stopped_at(3, tmp_path, FORMULA, files / "rows.csv", x="x", y="y", **options)
    frame = pd.read_csv(files / "rows.csv")
    frame.loc[5, "y"] += 1e-9
    changed = tmp_path / "changed.csv"
    frame.to_csv(changed, index=False)
    with pytest.raises(ConfigError, match="data"):
        gradfit.fit(FORMULA, changed, x="x", y="y", resume=tmp_path, **options)


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"y": "yy"}, DataError, "yy"),
        ({"model": "linear", "x": "label", "y": "y"}, DataError, "label.*text in a number column"),
        ({"y": "y", "read": {"sep": ";"}}, ConfigError, "sep"),
    ],
)
def test_bad_input_to_a_streamed_fit_is_named(files, kwargs, error, text):
    kwargs = dict(kwargs)
    model = kwargs.pop("model", FORMULA)
    with pytest.raises(error, match=text):
        gradfit.fit(model, files / "rows.csv", stream=True, **kwargs)


def test_only_files_stream(files):
    frame = pd.read_csv(files / "rows.csv")
    with pytest.raises(ConfigError, match="path of a file"):
        gradfit.fit(FORMULA, frame, y="y", stream=True)


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 60_000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    label = ((x1 > 0).astype(int) + (x2 > 0).astype(int)).astype(float)
    label[23_457] = 3.0  # a rare class that the evenly spaced sample misses
    folder = tmp_path_factory.mktemp("classes")
    pd.DataFrame({"x1": x1, "x2": x2, "label": label}).to_parquet(folder / "rare.parquet")
    label[31_001] = 1.5
    pd.DataFrame({"x1": x1, "x2": x2, "label": label}).to_parquet(folder / "bad.parquet")
    return folder


def test_a_class_the_sample_misses_still_has_its_output(classes):
    options = {"y": "label", "loss": "cross_entropy", "optimizer": "adam", "steps": 15, "dtype": "float64"}
    a = gradfit.fit("linear", classes / "rare.parquet", **options)
    b = gradfit.fit("linear", classes / "rare.parquet", stream=True, **options)
    assert a.model.n_outputs == b.model.n_outputs == 4
    equal(a, b, 1e-12)
    assert b.metrics["train"]["accuracy"] == a.metrics["train"]["accuracy"]


def test_a_bad_label_of_a_streamed_file_is_named_at_its_row(classes):
    messages = []
    for stream in (False, True):
        with pytest.raises(DataError, match="whole numbers") as caught:
            gradfit.fit("linear", classes / "bad.parquet", y="label", loss="cross_entropy", stream=stream, steps=2)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "row 31001" in messages[1]


def test_a_formula_s_name_that_is_also_the_sigma_column_is_an_input_as_in_memory(files):
    # `s` is the sigma column and, in this formula, an input too: both readers take it as the formula asks.
    options = {"x": None, "y": "y", "sigma": "s", "optimizer": "lm"}
    a = gradfit.fit("a*exp(-b*x) + c + d*s", files / "rows.parquet", **options)
    b = gradfit.fit("a*exp(-b*x) + c + d*s", files / "rows.parquet", stream=True, **options)
    assert a.data["x"] == b.data["x"] == ["x", "s"]
    equal(a, b, 1e-10)

"""FitResult.predict on DataFrames, paths, dicts, arrays and tensors; classes and probabilities as scikit-learn's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.data.io import read_table
from gradfit.errors import ConfigError, DataError
from gradfit.sklearn import GradfitClassifier
from gradfit.train.prediction import model_outputs, prediction_frame, task_of

BLOBS = read_table("builtin:blobs")


@pytest.fixture(scope="module")
def line():
    x = np.linspace(0, 2, 30)
    return gradfit.fit("a*x + c", {"x": x, "y": 2 * x + 1}, y="y", optimizer="lbfgs", steps=20, dtype="float64")


@pytest.fixture(scope="module")
def three_classes():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [3, 0], [0, 3]])
    label = rng.integers(0, 3, 240)
    X = centres[label] + rng.normal(size=(240, 2))
    frame = pd.DataFrame({"u": X[:, 0], "v": X[:, 1], "label": label})
    r = gradfit.fit("logistic", frame, y="label", loss="cross_entropy", optimizer="lbfgs", steps=50, dtype="float64")
    return r, frame


def test_task_follows_the_loss():
    assert [task_of(n) for n in ("mse", "mae", "huber", "bce", "cross_entropy", "CE", "Binary-Cross-Entropy")] == [
        "regression"
    ] * 3 + ["binary", "multiclass", "multiclass", "binary"]
    assert task_of(lambda p, t: ((p - t) ** 2).mean()) == "regression"


def test_predict_from_a_frame_a_path_a_dict_an_array_and_a_tensor(line, tmp_path):
    x = np.array([0.0, 0.5, 4.0])
    expected = 2 * x + 1
    frame = pd.DataFrame({"id": ["a", "b", "c"], "x": x})  # other columns, text included, are ignored
    frame.to_csv(tmp_path / "new.csv", index=False)
    frame.to_parquet(tmp_path / "new.parquet", index=False)
    for source in (frame, tmp_path / "new.csv", str(tmp_path / "new.parquet"), {"x": x}, x, x[:, None]):
        np.testing.assert_allclose(line.predict(source), expected, rtol=1e-9)
    out = line.predict(torch.tensor(x))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64


def test_predict_refuses_bad_inputs_with_their_names(line, tmp_path):
    with pytest.raises(DataError, match=r"lacks the column\(s\) x .*Columns found: t, y"):
        line.predict(pd.DataFrame({"t": [1.0], "y": [2.0]}))
    (tmp_path / "bad.csv").write_text("x\n1\nabc\n")
    with pytest.raises(DataError, match=r"column 'x': text in a number column .*line 3: 'abc'"):
        line.predict(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="infinite"):
        line.predict({"x": [1.0, np.inf]})
    with pytest.raises(DataError, match="got 2 input column"):
        line.predict(np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="kind='output'"):
        line.predict({"x": [1.0]}, kind="class")
    with pytest.raises(ConfigError, match="'kind' parameter must be one of"):
        line.predict({"x": [1.0]}, kind="probability")


def test_missing_inputs_give_missing_predictions_in_place(line):
    out = line.predict({"x": [1.0, np.nan, 2.0]})
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([3.0, 5.0])


def test_classes_and_probabilities_match_the_sklearn_classifier(three_classes):
    r, frame = three_classes
    X = frame[["u", "v"]].to_numpy()
    clf = GradfitClassifier(steps=50).fit(X, frame["label"].to_numpy())
    proba = r.predict_proba(frame)
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(r.predict(frame, kind="class"), clf.predict(X))
    assert r.predict(frame, kind="class").dtype == np.int64
    logits = r.predict(frame)
    assert logits.shape == (240, 3)
    np.testing.assert_array_equal(r.predict(frame, kind="class"), logits.argmax(axis=1))


def test_binary_probabilities_are_those_of_class_0_and_1():
    r = gradfit.fit("logistic", BLOBS, y="label", loss="bce", optimizer="lbfgs", steps=3, dtype="float64")
    z = r.predict(BLOBS)
    p = r.predict_proba(BLOBS)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(p[:, 0], 1 - p[:, 1], rtol=1e-12)
    np.testing.assert_array_equal(r.predict(BLOBS, kind="class"), (z > 0).astype(np.int64))
    with_gap = r.predict({"x1": [0.0, np.nan], "x2": [0.0, 1.0]}, kind="class")
    assert with_gap.dtype == np.float64 and np.isnan(with_gap[1]) and with_gap[0] in (0.0, 1.0)


def test_prediction_frame_columns(three_classes):
    r, frame = three_classes
    table = prediction_frame(r, frame)
    assert list(table.columns) == ["u", "v", "class", "prob_0", "prob_1", "prob_2"]
    np.testing.assert_allclose(table[["prob_0", "prob_1", "prob_2"]].to_numpy(), r.predict_proba(frame))
    assert list(prediction_frame(r, frame, keep="all").columns[:3]) == ["u", "v", "label"]
    assert list(prediction_frame(r, frame, keep="none").columns) == ["class", "prob_0", "prob_1", "prob_2"]
    with pytest.raises(DataError, match="already has the column"):
        prediction_frame(r, table, keep="all")


def test_outputs_are_computed_in_bounded_chunks():
    seen = []
    r = gradfit.fit("a*x + c", {"x": np.arange(5.0), "y": np.arange(5.0)}, y="y", optimizer="lbfgs", steps=2)
    model = r.model

    def forward(params, x):
        seen.append(len(x))
        return model.forward(params, x)

    class Wrapped:
        n_outputs = 1
        __call__ = staticmethod(forward)

    out = model_outputs(Wrapped(), r.params, torch.arange(1000.0)[:, None], chunk_rows=128)
    assert max(seen) == 128 and sum(seen) == 1000 and out.shape == (1000,)

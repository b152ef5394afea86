"""Metrics against scikit-learn: accumulated in chunks, equal to the whole-array oracle; stored in the result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

import gradfit
from gradfit.analysis.fitted_data import run_data
from gradfit.analysis.metrics import MAX_CONFUSION_CLASSES, ClassificationScore, RegressionScore, fit_metrics, score
from gradfit.data.dataset import Dataset
from gradfit.data.io import read_table
from gradfit.errors import GradfitWarning
from gradfit.models.base import Model, ParamSpec


class Logits(Model):
    """A model whose outputs are the input columns themselves, recording the rows of each call."""

    def __init__(self, k: int):
        self.inputs = tuple(f"z{i}" for i in range(k))
        self.n_outputs = k
        self.calls: list[int] = []

    @property
    def specs(self):
        return (ParamSpec("unused", ()),)

    def forward(self, params, x):
        self.calls.append(len(x))
        return x[:, 0] if self.n_outputs == 1 else x


def _dataset(z: np.ndarray, y: np.ndarray) -> Dataset:
    z = z[:, None] if z.ndim == 1 else z
    return Dataset(torch.tensor(z), torch.tensor(y, dtype=torch.float64), tuple(f"z{i}" for i in range(z.shape[1])))


@pytest.mark.parametrize("chunk", [7, 1000])
def test_regression_metrics_in_chunks_equal_sklearn(chunk):
    rng = np.random.default_rng(0)
    y = 1e6 + rng.normal(size=503)  # a large offset: a one-pass sum of squares would lose the spread
    pred = y + rng.normal(scale=0.3, size=503)
    model = Logits(1)
    m = score(model, {}, _dataset(pred, y), "regression", chunk_rows=chunk)
    assert max(model.calls) <= chunk
    assert m["n"] == 503
    assert m["r2"] == pytest.approx(r2_score(y, pred), rel=1e-9)
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)), rel=1e-12)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-12)
    assert m["tss"] == pytest.approx(((y - y.mean()) ** 2).sum(), rel=1e-9)


@pytest.mark.parametrize("chunk", [5, 1000])
def test_binary_metrics_equal_sklearn(chunk):
    rng = np.random.default_rng(1)
    logit = rng.normal(scale=2, size=301)
    y = (rng.random(301) < 1 / (1 + np.exp(-logit))).astype(float)
    model = Logits(1)
    m = score(model, {}, _dataset(logit, y), "binary", chunk_rows=chunk)
    p1 = 1 / (1 + np.exp(-logit))
    assert max(model.calls) <= chunk
    assert m["accuracy"] == pytest.approx(accuracy_score(y, (logit > 0).astype(float)), abs=0)
    assert m["log_loss"] == pytest.approx(log_loss(y, p1), rel=1e-9)
    assert m["nll"] == pytest.approx(301 * log_loss(y, p1), rel=1e-9)
    assert m["confusion_matrix"] == confusion_matrix(y, (logit > 0).astype(float), labels=[0, 1]).tolist()
    assert m["labels"] == [0, 1]


@pytest.mark.parametrize("chunk", [4, 1000])
def test_multiclass_metrics_equal_sklearn(chunk):
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=2, size=(250, 4))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p], dtype=float)
    model = Logits(4)
    m = score(model, {}, _dataset(logits, y), "multiclass", chunk_rows=chunk)
    assert max(model.calls) <= chunk
    guess = logits.argmax(axis=1)
    assert m["accuracy"] == accuracy_score(y, guess)
    assert m["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]), rel=1e-9)
    assert m["confusion_matrix"] == confusion_matrix(y, guess, labels=[0, 1, 2, 3]).tolist()


def test_many_classes_keep_accuracy_but_no_confusion_matrix():
    k = MAX_CONFUSION_CLASSES + 1
    acc = ClassificationScore(k, binary=False)
    assert acc.counts is None  # no k x k table is ever allocated
    logits = torch.eye(k, dtype=torch.float64)
    acc.update(logits, torch.arange(k).double())
    out = acc.result()
    assert out["accuracy"] == 1.0 and out["confusion_matrix"] is None and out["labels"] == list(range(k))


def test_soft_binary_targets_have_a_log_loss_but_no_accuracy():
    acc = ClassificationScore(2, binary=True)
    logit, y = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.3, 1.0, 0.0])
    acc.update(logit, y)
    out = acc.result()
    p = 1 / (1 + np.exp(-logit.numpy()))
    manual = -(y.numpy() * np.log(p) + (1 - y.numpy()) * np.log(1 - p)).mean()
    assert out["log_loss"] == pytest.approx(manual) and out["accuracy"] is None and out["confusion_matrix"] is None
    assert "probabilities" in out["note"]


def test_constant_targets_have_no_r2_and_non_finite_numbers_become_none():
    acc = RegressionScore()
    acc.update(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0]))
    assert acc.result()["r2"] is None and acc.result()["rmse"] == pytest.approx(np.sqrt(0.5))
    acc.update(torch.tensor([float("nan")]), torch.tensor([1.0]))
    out = acc.result()
    assert out["rmse"] is None and out["mae"] is None
    json.dumps(out, allow_nan=False)


def _split(result, data):
    ds = run_data(result, data)
    return ds.split(result.config["val_split"], torch.Generator().manual_seed(result.config["seed"]))


def test_fit_stores_train_and_validation_metrics_for_regression():
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, 200)
    d = {"x": x, "y": 1.5 * x - 0.5 + rng.normal(scale=0.4, size=200)}
    r = gradfit.fit("a*x + b", d, y="y", optimizer="lbfgs", steps=30, dtype="float64", val_split=0.25)
    train, val = _split(r, d)
    assert r.metrics["task"] == "regression"
    for part, ds in (("train", train), ("validation", val)):
        y, pred = ds.y.numpy(), r.predict(ds.x.numpy())
        m = r.metrics[part]
        assert m["n"] == len(ds)
        assert m["r2"] == pytest.approx(r2_score(y, pred), rel=1e-10)
        assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)), rel=1e-10)
        assert m["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-10)
    assert json.loads(r.to_json())["metrics"] == r.metrics
    assert gradfit.FitResult.from_json(r.to_json()).metrics == r.metrics


def test_fit_stores_classification_metrics_for_cross_entropy_and_bce():
    frame = read_table("builtin:blobs")
    r = gradfit.fit(
        "logistic", frame, y="label", loss="cross_entropy", optimizer="adam", lr=0.05, steps=40, val_split=0.3, seed=1
    )
    train, val = _split(r, frame)
    for part, ds in (("train", train), ("validation", val)):
        y = ds.y.numpy()
        proba = r.predict_proba(ds.x.numpy()).astype(np.float64)
        proba /= proba.sum(axis=1, keepdims=True)  # float32 rows sum to 1 only to rounding
        m = r.metrics[part]
        assert m["accuracy"] == accuracy_score(y, proba.argmax(axis=1))
        assert m["log_loss"] == pytest.approx(log_loss(y, proba, labels=[0, 1]), rel=1e-4)
        assert m["confusion_matrix"] == confusion_matrix(y, proba.argmax(axis=1), labels=[0, 1]).tolist()
    b = gradfit.fit("logistic", frame, y="label", loss="bce", optimizer="lbfgs", steps=5, dtype="float64")
    p1 = b.predict_proba(frame)[:, 1]
    assert b.metrics["task"] == "binary" and b.metrics["validation"] is None
    assert b.metrics["train"]["accuracy"] == accuracy_score(frame["label"], (p1 > 0.5).astype(int))
    assert b.metrics["train"]["log_loss"] == pytest.approx(log_loss(frame["label"], p1), rel=1e-9)


def test_fit_metrics_never_break_a_fit(monkeypatch):
    import gradfit.analysis.metrics as metrics

    monkeypatch.setattr(metrics, "fit_metrics", lambda *a, **k: 1 / 0)
    r = gradfit.fit("linear", "builtin:linear", y="y", optimizer="sgd", lr=0.1, steps=3)
    assert r.metrics["train"] is None and "ZeroDivisionError" in r.metrics["error"]


def test_fit_metrics_of_a_diverged_fit_are_valid_json():
    d = {"x": np.linspace(0, 1, 20), "y": np.linspace(0, 1, 20) * 3}
    with pytest.warns(GradfitWarning):
        r = gradfit.fit("a*x + c", d, y="y", optimizer="sgd", lr=50, steps=100)
    assert r.stop_reason == "diverged"
    json.loads(r.to_json())  # allow_nan=False inside: would raise on a NaN metric
    assert set(fit_metrics(r.model, r.params, "mse", run_data(r, d))) == {"task", "train", "validation"}

"""Row weights at the door: sigma and weights from a column or an array, every refusal, and the rows they follow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradfit.data.convert import as_dataset
from gradfit.data.dataset import Dataset
from gradfit.data.weights import Weighting
from gradfit.errors import ConfigError, DataError


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "x": [0.0, 1.0, 2.0, 3.0, 4.0],
            "y": [1.0, 2.9, 5.2, 7.1, 8.8],
            "err": [0.1, 0.2, 0.4, 0.5, 1.0],
            "w": [1.0, 2.0, 0.0, 3.0, 1.0],
        }
    )


def test_sigma_column_gives_inverse_variance_weights_and_is_not_an_input(frame):
    ds = as_dataset(frame, x=None, y="y", sigma="err", dtype=torch.float64)
    assert ds.x_names == ("x", "w")  # every column but the target and the sigma
    np.testing.assert_allclose(ds.w.numpy(), 1 / frame["err"].to_numpy() ** 2, rtol=1e-15)
    assert ds.weighting == Weighting("sigma", "err", False)
    ds = as_dataset(frame, y="y", weights="w", x=["x"])
    assert ds.x_names == ("x",) and ds.w.dtype == torch.float32
    assert torch.equal(ds.w, torch.tensor([1.0, 2.0, 0.0, 3.0, 1.0]))
    assert ds.weighting == Weighting("weights", "w", False)


@pytest.mark.parametrize(
    "given",
    [
        np.array([0.1, 0.2, 0.4, 0.5, 1.0]),
        [0.1, 0.2, 0.4, 0.5, 1.0],
        torch.tensor([0.1, 0.2, 0.4, 0.5, 1.0], dtype=torch.float64),
        pd.Series([0.1, 0.2, 0.4, 0.5, 1.0], index=[9, 8, 7, 6, 5]),
        np.array([[0.1], [0.2], [0.4], [0.5], [1.0]]),
    ],
)
def test_sigma_as_an_array_in_row_order(frame, given):
    ds = as_dataset(frame[["x", "y"]], y="y", sigma=given, absolute_sigma=True, dtype=torch.float64)
    assert ds.x_names == ("x",)
    np.testing.assert_allclose(ds.w.numpy(), 1 / np.array([0.1, 0.2, 0.4, 0.5, 1.0]) ** 2, rtol=1e-15)
    assert ds.weighting == Weighting("sigma", None, True)
    assert "an array" in ds.weighting.describe()


def test_arrays_and_tuples_take_weights_too():
    X = np.arange(6.0).reshape(3, 2)
    ds = as_dataset((X, [1.0, 2.0, 3.0]), weights=[1, 0, 2])
    assert torch.equal(ds.w, torch.tensor([1.0, 0.0, 2.0])) and ds.x_names == ("x0", "x1")


def _problems(frame, **kw) -> str:
    with pytest.raises(DataError) as err:
        as_dataset(frame, y="y", x=["x"], **kw)
    return str(err.value)


def test_missing_column_says_did_you_mean(frame):
    text = _problems(frame, sigma="er")
    assert "sigma column 'er' not found" in text and "Did you mean 'err'?" in text


def test_zero_or_negative_sigma_names_the_rows(frame):
    text = _problems(frame.assign(err=[0.1, 0.0, -1.0, 0.5, 1.0]), sigma="err")
    assert "sigma column 'err': 2 sigma value(s) <= 0 at rows 1, 2 (the first is 0)" in text
    assert "must be > 0" in text


def test_negative_and_all_zero_weights(frame):
    assert "2 negative weight(s) at rows 0, 3" in _problems(frame.assign(w=[-1.0, 2, 0, -3, 1]), weights="w")
    assert "every weight is 0" in _problems(frame.assign(w=0.0), weights="w")


def test_nan_in_the_weights_is_refused_or_dropped_with_its_row(frame):
    bad = frame.assign(err=[0.1, np.nan, 0.4, 0.5, 1.0])
    assert "column 'err': 1 missing value (NaN or empty) at row 1" in _problems(bad, sigma="err")
    notes: list = []
    ds = as_dataset(
        bad.assign(x=[0.0, 1.0, 2.0, np.nan, 4.0]),
        y="y",
        x=["x"],
        sigma="err",
        drop_nan=True,
        report=notes,
        dtype=torch.float64,
    )
    # The same rows go from the inputs, the targets and the weights.
    assert notes == ["dropped 2 rows with missing values (rows 1, 3)"]
    np.testing.assert_array_equal(ds.x[:, 0].numpy(), [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(ds.y.numpy(), [1.0, 5.2, 8.8])
    np.testing.assert_allclose(ds.w.numpy(), 1 / np.array([0.1, 0.4, 1.0]) ** 2)


def test_wrong_length_and_shape(frame):
    assert "sigma has 3 values but the data has 5 rows" in _problems(frame, sigma=[1.0, 2.0, 3.0])
    assert "weights must be one value per row (a 1-D array). Got shape (5, 2)" in _problems(
        frame, weights=np.ones((5, 2))
    )


def test_text_and_infinite_values_are_reported_as_for_any_column(frame):
    text = _problems(frame.assign(err=["0.1", "n/a", "0.2", "0.3", "inf"]), sigma="err")
    assert "column 'err': text in a number column" in text and "column 'err': 1 value infinite" in text


def test_tiny_sigma_overflows_float32_with_a_fix(frame):
    text = _problems(frame.assign(err=[1e-30, 1, 1, 1, 1]), sigma="err")
    assert "1/sigma² overflows torch.float32" in text and "dtype='float64'" in text
    ds = as_dataset(frame.assign(err=[1e-30, 1, 1, 1, 1]), y="y", x=["x"], sigma="err", dtype=torch.float64)
    assert float(ds.w[0]) == pytest.approx(1e60)


def test_every_problem_in_one_message(frame):
    text = _problems(frame.assign(err=[0.0, 1, 1, 1, 1], x=["a", 1, 2, 3, 4]), sigma="err")
    assert "2 problems" in text and "<= 0" in text and "text in a number column" in text


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(sigma="err", weights="w"), "not both"),
        (dict(weights="w", absolute_sigma=True), "needs sigma"),
        (dict(absolute_sigma=True), "needs sigma"),
        (dict(sigma="err", absolute_sigma="yes"), "must be True or False"),
        (dict(sigma=0.5), "column name or an array"),
    ],
)
def test_contradictions_are_config_errors(frame, kw, words):
    with pytest.raises(ConfigError, match=words):
        as_dataset(frame, y="y", **kw)


def test_weights_follow_rows_split_and_device(frame):
    ds = as_dataset(frame, y="y", x=["x"], weights="w", dtype=torch.float64)
    train, val = ds.split(0.4, torch.Generator().manual_seed(3))
    for part in (train, val):  # each row keeps its own weight: w was the row number's weight in the frame
        rows = [int(v) for v in part.x[:, 0]]
        assert part.w.tolist() == frame["w"].to_numpy()[rows].tolist()
    moved = ds.to("cpu", torch.float32)
    assert moved.w.dtype == torch.float32 and torch.equal(moved.w, ds.w.float())
    assert torch.equal(ds.columns(["x"]).w, ds.w)
    with pytest.raises(ValueError, match="w has shape"):
        Dataset(x=ds.x, y=ds.y, x_names=("x",), w=torch.ones(2))


def test_a_dataset_keeps_its_weights_and_their_record(frame):
    ds = as_dataset(frame, y="y", x=["x"], sigma="err", absolute_sigma=True, dtype=torch.float64)
    again = as_dataset(ds, dtype=torch.float32)
    assert torch.equal(again.w, ds.w.float()) and again.weighting == ds.weighting and again.x_names == ("x",)
    other = as_dataset(ds, weights=[1.0, 1.0, 1.0, 1.0, 2.0])  # asked anew: those replace them
    assert other.w.tolist() == [1.0, 1.0, 1.0, 1.0, 2.0] and other.weighting.kind == "weights"


def test_weighting_round_trips_through_json_form():
    how = Weighting("sigma", "err", True)
    d = how.to_dict(12.5)
    assert d == {"kind": "sigma", "column": "err", "from": "column", "absolute_sigma": True, "sum": 12.5}
    assert Weighting.from_dict(d) == how and Weighting.from_dict(None) is None


def test_a_column_called_w_is_just_a_column(frame):
    ds = as_dataset(frame, y="y")  # a DataFrame's column 'w' is not a Dataset's weights
    assert ds.w is None and ds.x_names == ("x", "err", "w")

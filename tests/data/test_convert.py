"""as_dataset: every input kind, exact dtypes, drop_nan, and one message gathering every problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradfit.data.convert import as_dataset
from gradfit.data.dataset import Dataset
from gradfit.data.io import open_data
from gradfit.data.plain_csv import NumberTable
from gradfit.data.synthetic import linear
from gradfit.errors import ConfigError, DataError


@pytest.fixture
def frame():
    return pd.DataFrame({"x1": [0.1, 0.2, 0.3, 0.4], "x2": [1, 2, 3, 4], "y": [1.5, 2.5, 3.5, 4.5]})


def _expected(*cols, dtype=torch.float32):
    return torch.stack([torch.as_tensor(np.asarray(c, dtype=np.float64)).to(dtype) for c in cols], dim=1)


def test_dataframe_default_columns(frame):
    ds = as_dataset(frame, y="y")
    assert isinstance(ds, Dataset) and ds.x_names == ("x1", "x2") and ds.y_name == "y"
    assert ds.x.dtype == torch.float32 and ds.x.shape == (4, 2)
    assert torch.equal(ds.x, _expected(frame["x1"], frame["x2"]))
    assert torch.equal(ds.y, torch.tensor(frame["y"].to_numpy(), dtype=torch.float32))
    assert ds.source == "DataFrame"


@pytest.mark.parametrize("x,names", [("x2", ("x2",)), (["x2", "x1"], ("x2", "x1")), ("x2, x1", ("x2", "x1"))])
def test_x_selection(frame, x, names):
    ds = as_dataset(frame, x=x, y="y")
    assert ds.x_names == names
    assert torch.equal(ds.x, _expected(*[frame[n] for n in names]))


def test_no_targets(frame):
    ds = as_dataset(frame)
    assert ds.y is None and ds.y_name is None and ds.x_names == ("x1", "x2", "y")


def test_path_and_builtin(tmp_path, frame):
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    ds = as_dataset(path, y="y")
    assert ds.source == str(path) and torch.equal(ds.x, _expected(frame["x1"], frame["x2"]))
    ds = as_dataset("builtin:linear?n=50&seed=4", y="y", dtype=torch.float64)
    df = linear(50, seed=4)
    assert ds.source == "builtin:linear?n=50&seed=4"
    assert torch.equal(ds.x[:, 0], torch.tensor(df["x"].to_numpy()).double())


def test_dict_of_arrays():
    ds = as_dataset({"a": [1, 2, 3], "b": np.array([4.0, 5.0, 6.0]), "t": torch.tensor([7.0, 8.0, 9.0])}, y="t")
    assert ds.x_names == ("a", "b") and torch.equal(ds.y, torch.tensor([7.0, 8.0, 9.0]))
    assert ds.source == "dict"


@pytest.mark.parametrize("make", [np.asarray, torch.tensor])
def test_2d_array_named_and_default(make):
    X = make([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    ds = as_dataset(X, y=make([1.0, 0.0, 1.0]))
    assert ds.x_names == ("x0", "x1") and ds.y_name == "y"
    assert torch.equal(ds.x, torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert as_dataset(X, x=["u", "v"]).x_names == ("u", "v")
    assert as_dataset(X, x="x1").x_names == ("x1",)
    assert as_dataset(X, y="x1").x_names == ("x0",)


def test_tuple_and_column_targets():
    X, y = np.linspace(0, 1, 5), torch.arange(5.0).reshape(5, 1)
    ds = as_dataset((X, y))
    assert ds.x_names == ("x",) and ds.y_name == "y" and ds.source == "(X, y) tuple"
    assert torch.equal(ds.x[:, 0], torch.tensor(X, dtype=torch.float32))
    assert torch.equal(ds.y, torch.arange(5.0))
    with pytest.raises(DataError, match="given twice"):
        as_dataset((X, y), y=y)


def test_dataset_reselect_and_cast(frame):
    ds = as_dataset(frame, y="y")
    same = as_dataset(ds)
    assert same.x_names == ds.x_names and same.y_name == "y" and torch.equal(same.x, ds.x)
    other = as_dataset(ds, x="x1", y="x2", dtype=torch.float64)
    assert other.dtype == torch.float64 and other.x_names == ("x1",) and other.y_name == "x2"
    assert torch.equal(other.y, ds.x[:, 1].double())


def test_float32_to_float64_is_exact():
    values = np.array([0.1, 1 / 3, 1e-30, 3.4e38], dtype=np.float32)
    ds = as_dataset(pd.DataFrame({"a": values, "b": values.astype(np.float64)}), dtype=torch.float64)
    assert torch.equal(ds.x[:, 0], torch.from_numpy(values.copy()).double())
    assert torch.equal(ds.x[:, 1], torch.from_numpy(values.astype(np.float64)))
    ds32 = as_dataset(pd.DataFrame({"a": values}), dtype="float32")
    assert torch.equal(ds32.x[:, 0], torch.from_numpy(values.copy()))


def test_booleans_nullable_and_categorical_numbers():
    df = pd.DataFrame(
        {
            "b": [True, False, True],
            "n": pd.array([1, 2, 3], dtype="Int64"),
            "c": pd.Categorical([1.5, 2.5, 1.5]),
            "o": pd.Series([True, 2, "3"], dtype=object),
        }
    )
    ds = as_dataset(df)
    assert torch.equal(ds.x, torch.tensor([[1.0, 1.0, 1.5, 1.0], [0.0, 2.0, 2.5, 2.0], [1.0, 3.0, 1.5, 3.0]]))


def test_inputs_are_not_mutated_nor_shared(frame):
    before = frame.copy()
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = torch.tensor([1.0, 2.0])
    ds = as_dataset(frame, y="y", drop_nan=True)
    ds2 = as_dataset(arr, y=y)
    ds.x.add_(100)
    ds2.x.add_(100)
    ds2.y.add_(100)
    pd.testing.assert_frame_equal(frame, before)
    assert arr[0, 0] == 1.0 and y[0] == 1.0


def test_drop_nan_reports_rows(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("x,y\n1,2\n2,\n3,4\nNA,5\n6,7\n")
    report = []
    ds = as_dataset(path, y="y", drop_nan=True, report=report)
    assert torch.equal(ds.x[:, 0], torch.tensor([1.0, 3.0, 6.0])) and torch.equal(ds.y, torch.tensor([2.0, 4.0, 7.0]))
    assert report == ["dropped 2 rows with missing values (lines 3, 5)"]
    assert "dropped 2 rows" in ds.source
    df = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0], "y": [1.0, 2.0, 3.0, np.nan]})
    report = []
    as_dataset(df, y="y", drop_nan=True, report=report)
    assert report == ["dropped 2 rows with missing values (rows 1, 3)"]
    report = []
    as_dataset(df.fillna(0), y="y", drop_nan=True, report=report)
    assert report == []


def test_drop_nan_ignores_unused_columns():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0], "junk": [np.nan, "text", None]})
    assert len(as_dataset(df, x="x", y="y", drop_nan=True)) == 3


@pytest.mark.parametrize(
    "data,kwargs,match",
    [
        (
            pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}),
            {"y": "yy"},
            r"target \(y\) column 'yy' not found. Available columns: x, y. Did you mean 'y'",
        ),
        (
            pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}),
            {"x": "xx", "y": "y"},
            r"input \(x\) column 'xx' not found.*'x'",
        ),
        (
            pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}),
            {"x": "x,y", "y": "y"},
            r"'y' is both the target \(y\) and an input \(x\)",
        ),
        (
            pd.DataFrame({"x": [1.0, np.nan, 3.0, np.nan]}),
            {},
            r"column 'x': 2 missing values \(NaN or empty\) at rows 1, 3.*drop_nan=True.*--drop-nan",
        ),
        (pd.DataFrame({"x": [1.0, np.inf, -np.inf]}), {}, r"column 'x': 2 values infinite"),
        (
            pd.DataFrame({"x": [1e300, 1.0]}),
            {},
            r"too large for float32 at row 0. Fit in float64: dtype='float64' \(--dtype float64\)",
        ),
        (pd.DataFrame({"x": [1.0]}), {}, r"1 row, but at least 2 are needed"),
        (pd.DataFrame({"x": [1.0, 2.0, 3.0]}), {"min_rows": 5}, r"3 rows, but at least 5"),
        (pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3)}), {}, r"column 't': holds dates or times"),
        (pd.DataFrame({"t": ["2024-01-01", "2024-01-02"]}), {}, r"text in a number column.*looks like dates"),
        (pd.DataFrame({"z": np.array([1 + 2j, 3 + 0j])}), {}, r"column 'z': holds complex numbers"),
        ({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]}, {"y": "b"}, r"different lengths \('a' has 3, 'b' has 2 rows\)"),
        (np.zeros((3, 2)), {"y": np.zeros(4)}, r"different lengths"),
        (pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], columns=["a", "a"]), {}, r"'a' appears more than once"),
        ({"a": np.zeros((2, 2))}, {}, r"column 'a': expected a 1-D column"),
    ],
)
def test_bad_inputs(data, kwargs, match):
    with pytest.raises(DataError, match=match):
        as_dataset(data, **kwargs)


def test_text_in_a_csv_names_the_file_line_and_value(tmp_path):
    path = tmp_path / "mixed.csv"
    long_word = "w" * 60
    path.write_text(f"x,y\n1,2\n2,3\n{long_word},4\n5,oops\n")
    with pytest.raises(DataError) as info:
        as_dataset(path, y="y")
    msg = str(info.value)
    assert f"{path}, column 'x': text in a number column (1 value, the first at line 4: '{'w' * 40}...')" in msg
    assert f"{path}, column 'y': text in a number column (1 value, the first at line 5: 'oops')" in msg
    assert "missing value" not in msg  # text is not counted twice


def test_frame_from_read_table_keeps_file_and_lines(tmp_path):
    from gradfit.data.io import read_table

    path = tmp_path / "kept.csv"
    path.write_text("x,y\n1,2\n2,\n3,4\n")
    with pytest.raises(DataError, match=rf"{path.name}, column 'y': 1 missing value \(NaN or empty\) at line 3"):
        as_dataset(read_table(path), y="y")


def test_every_problem_in_one_message(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,c,d\n1,x,3,4\n2,3,,5\n3,4,inf,6\n")
    with pytest.raises(DataError) as info:
        as_dataset(path, x="a,b,c,e", y="dd")
    lines = str(info.value).splitlines()
    assert lines[0] == f"Cannot use the data from {path}: 5 problems:"
    assert len(lines) == 6 and all(line.startswith(f"  - {path}") for line in lines[1:])
    body = "\n".join(lines)
    for expected in [
        "target (y) column 'dd' not found",
        "input (x) column 'e' not found",
        "column 'b': text in a number column",
        "column 'c': 1 missing value (NaN or empty) at line 3",
        "column 'c': 1 value infinite (inf or -inf) at line 4",
    ]:
        assert expected in body


@pytest.mark.parametrize("dtype", [torch.int64, "int32", None])
def test_bad_dtype(dtype):
    with pytest.raises(ConfigError, match=r"'dtype' parameter must be a floating torch dtype"):
        as_dataset(np.zeros((3, 1)), dtype=dtype)


def test_unsupported_data_type():
    with pytest.raises(DataError, match=r"Cannot use data of type set"):
        as_dataset({1, 2, 3})


@pytest.mark.parametrize("kind", ["array", "tensor", "frame", "plain csv"])
def test_a_single_input_column_is_a_copy_not_a_view_of_the_data(tmp_path, kind):
    """One input is no longer stacked (a copy) but the column itself as (n, 1): that column must be the dataset's
    own, at the dtype where no conversion copies (float64), for every kind of data."""
    x, y = np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0, 7.0])
    if kind == "array":
        data, kwargs = np.stack([x, y], axis=1), {"y": "x1"}
    elif kind == "tensor":
        data, kwargs = torch.tensor(x), {"y": torch.tensor(y)}
    elif kind == "frame":
        data, kwargs = pd.DataFrame({"x": x, "y": y}), {"y": "y"}
    else:
        path = tmp_path / "data.csv"
        path.write_text("x,y\n1,5\n2,6\n3,7\n")
        data, kwargs = open_data(path)[0], {"y": "y"}
        assert isinstance(data, NumberTable)
    ds = as_dataset(data, dtype=torch.float64, **kwargs)
    assert ds.x.shape == (3, 1) and torch.equal(ds.x[:, 0], torch.tensor(x, dtype=torch.float64))
    ds.x.add_(100)
    again = as_dataset(data, dtype=torch.float64, **kwargs)
    assert torch.equal(again.x[:, 0], torch.tensor(x, dtype=torch.float64))
    assert torch.equal(ds.y, torch.tensor(y, dtype=torch.float64))

"""A plain numeric CSV file read without pandas (gradfit.data.plain_csv) gives what the pandas path gives.

The oracle is the pandas path itself (read_plain_csv made to decline, so csv_reader reads with pandas as
before) and, for the numbers, Python's float(): the same Dataset to the bit, the same reading record,
notes and messages; files that are not plain go to pandas unchanged.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.data import csv_reader
from gradfit.data.convert import as_dataset
from gradfit.data.io import open_data
from gradfit.data.plain_csv import PLAIN_MAX_BYTES, NumberTable
from gradfit.errors import DataError


def _numbers(seed: int = 0, rows: int = 50) -> str:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(rows) * 10.0 ** rng.integers(-8, 9, rows)
    y = rng.standard_normal(rows)
    lines = ["x,y,n"] + [f"{float(a)!r},{b:.6g},{k}" for a, b, k in zip(x, y, rng.integers(-1000, 1000, rows))]
    return "\n".join(lines) + "\n"


def _bit_patterns(rows: int = 2000) -> str:
    """Floats of every exponent and mantissa (random bits), as repr and with 21 digits: the parsers must agree."""
    bits = np.random.default_rng(7).integers(0, 2**64, size=3 * rows, dtype=np.uint64).view(np.float64)
    x = bits[np.isfinite(bits)][:rows]
    return "a,b\n" + "".join(f"{float(v)!r},{v:.20e}\n" for v in x)


PLAIN = {
    "repr floats": _numbers(),
    "random bit patterns": _bit_patterns(),
    "crlf, no last newline": _numbers(1).replace("\n", "\r\n").rstrip(),
    "bom": "\ufeff" + _numbers(2),
    "exponents and signs": "a,b\n1e5,-2.5E-3\n+.5,7.\n-0,0\n1e-400,-3e+2\n",
    "ints with -0": "a,b\n-0,1\n2,3\n-4,5\n",
    "one column": "only\n1.5\n2\n3\n",
    "15-digit ints": "a,b\n123456789012345,1\n-999999999999999,2\n",
    "names with spaces inside": "time (s),mass kg\n0,1\n1,2.5\n",
}

NOT_PLAIN = {
    "quotes": 'a,b\n"1",2\n3,4\n',
    "blank line": "a,b\n1,2\n\n3,4\n",
    "leading blank line": "\na,b\n1,2\n3,4\n",
    "spaces": "a,b\n1, 2\n3,4\n",
    "empty field": "a,b\n1,\n3,4\n",
    "text": "a,b\n1,x\n3,4\n",
    "nan": "a,b\n1,nan\n3,4\n",
    "inf": "a,b\n1,inf\n3,4\n",
    "overflow": "a,b\n1,1e999\n3,4\n",
    "ragged": "a,b\n1,2,3\n3,4\n",
    "semicolons, decimal commas": "a;b\n1,5;2\n3;4,25\n",
    "tabs": "a\tb\n1\t2\n3\t4\n",
    "16-digit int": "a,b\n1234567890123456,1\n2,3\n",
    "duplicate names": "a,a\n1,2\n3,4\n",
    "header only": "a,b\n",
    "lone carriage return": "a,b\r1,2\r3,4\r",
    "underscore": "a,b\n1_000,2\n3,4\n",
    "other scripts' digits": "a,b\n1,\u0661\u0662\n3,4\n",  # float() takes '١٢'; pandas reads it as text
    "fullwidth digits": "a,b\n1,2.5\n\uff13,4\n",
    "empty name": "a,\n1,2\n3,4\n",
}


def _pandas_path(monkeypatch):
    monkeypatch.setattr(csv_reader, "read_plain_csv", lambda p, names: None)


def _both(tmp_path, monkeypatch, text: str, read=None):
    path = tmp_path / "data.csv"
    path.write_bytes(text.encode("utf-8"))
    fast = open_data(path, read)
    with monkeypatch.context() as m:
        _pandas_path(m)
        slow = open_data(path, read)
    return fast, slow


@pytest.mark.parametrize("name", list(PLAIN))
def test_a_plain_file_is_read_without_pandas_into_the_same_dataset(tmp_path, monkeypatch, name):
    fast, slow = _both(tmp_path, monkeypatch, PLAIN[name])
    assert isinstance(fast[0], NumberTable) and isinstance(slow[0], pd.DataFrame)
    assert fast[1:] == slow[1:]  # origin, reading record, notes
    y = fast[0].columns[-1] if len(fast[0].columns) > 1 else None
    for dtype in (torch.float32, torch.float64):
        if dtype == torch.float32 and np.abs(fast[0].values).max() > 3e38:  # the same message on both paths
            messages = []
            for data in (fast[0], slow[0]):
                with pytest.raises(DataError, match="too large for float32") as err:
                    as_dataset(data, y=y, dtype=dtype)
                messages.append(str(err.value))
            assert messages[0] == messages[1]
            continue
        a, b = as_dataset(fast[0], y=y, dtype=dtype), as_dataset(slow[0], y=y, dtype=dtype)
        assert (a.x_names, a.y_name, a.source) == (b.x_names, b.y_name, b.source)
        assert (a.y is None) == (b.y is None)
        for u, v in ((a.x, b.x), (a.y, b.y)) if a.y is not None else ((a.x, b.x),):
            assert u.dtype == v.dtype and torch.equal(u, v) and torch.equal(u.signbit(), v.signbit())
    # and each number is Python's float() of its text (correctly rounded)
    text = PLAIN[name].lstrip("\ufeff").replace("\r\n", "\n").strip().split("\n")[1:]
    want = np.array([[float(f) for f in line.split(",")] for line in text])
    np.testing.assert_array_equal(fast[0].values, want)


@pytest.mark.parametrize("name", list(NOT_PLAIN))
def test_other_files_go_to_pandas_as_before(tmp_path, monkeypatch, name):
    path = tmp_path / "data.csv"
    path.write_bytes(NOT_PLAIN[name].encode("utf-8"))
    outcomes = []
    for plain in (True, False):
        with monkeypatch.context() as m:
            if not plain:
                _pandas_path(m)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    outcomes.append(open_data(path))
            except DataError as err:
                outcomes.append(str(err))
    if isinstance(outcomes[0], str):
        assert outcomes[0] == outcomes[1]
    else:
        assert isinstance(outcomes[0][0], pd.DataFrame)
        pd.testing.assert_frame_equal(outcomes[0][0], outcomes[1][0])
        assert outcomes[0][1:] == outcomes[1][1:]


@pytest.mark.parametrize(
    "read", [{"encoding": "latin-1"}, {"header": False}, {"dates": ["a"]}, {"sep": ";"}, {"decimal": ","}]
)
def test_reading_options_other_than_the_plain_layout_go_to_pandas(tmp_path, read):
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    try:
        got = open_data(path, read)[0]
    except DataError:
        return  # refused by the pandas path, as before
    assert not isinstance(got, NumberTable)


def test_compressed_and_large_files_go_to_pandas(tmp_path):
    import gzip

    gz = tmp_path / "data.csv.gz"
    gz.write_bytes(gzip.compress(b"a,b\n1,2\n3,4\n"))
    assert isinstance(open_data(gz)[0], pd.DataFrame)
    big = tmp_path / "big.csv"
    rows = PLAIN_MAX_BYTES // 8 + 1
    big.write_text("a,b\n" + "1.25,2.5\n" * rows)
    assert isinstance(open_data(big)[0], pd.DataFrame)


@pytest.mark.parametrize(
    "text, kwargs",
    [
        ("a,b\n1,2\n", {"y": "b"}),  # too few rows
        ("a,b\n1,2\n3,4\n", {"y": "c"}),  # unknown target, with a suggestion
        ("a,b\n1,2\n3,1e39\n5,6\n", {"y": "b"}),  # overflows float32 on line 3
    ],
)
def test_messages_from_a_plain_file_are_the_pandas_paths(tmp_path, monkeypatch, text, kwargs):
    fast, slow = _both(tmp_path, monkeypatch, text)
    assert isinstance(fast[0], NumberTable)
    messages = []
    for data in (fast[0], slow[0]):
        with pytest.raises(DataError) as err:
            as_dataset(data, **kwargs)
        messages.append(str(err.value))
    assert messages[0] == messages[1]


@pytest.mark.filterwarnings("ignore::gradfit.errors.GradfitWarning")  # adam's 50 steps do not converge
@pytest.mark.parametrize("optimizer", ["lm", "adam"])
def test_a_fit_of_a_plain_file_is_the_pandas_paths_fit(tmp_path, monkeypatch, optimizer):
    path = tmp_path / "data.csv"
    path.write_text(_numbers(3, rows=40))
    kwargs = dict(model="a*x + b", data=str(path), y="y", x="x", optimizer=optimizer, steps=50, seed=1)
    fast = gradfit.fit(**kwargs)
    _pandas_path(monkeypatch)
    slow = gradfit.fit(**kwargs)
    assert fast.flat_params == slow.flat_params and fast.loss == slow.loss
    assert fast.data == slow.data


def test_a_weighted_fit_of_a_plain_file_is_the_pandas_paths_fit(tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    rng = np.random.default_rng(4)
    x, e, s = np.linspace(0, 3, 30).tolist(), rng.standard_normal(30).tolist(), (0.05 + rng.random(30)).tolist()
    rows = [f"{a!r},{2 * a + 1 + 0.1 * b!r},{c!r}" for a, b, c in zip(x, e, s)]
    path.write_text("x,y,s\n" + "\n".join(rows) + "\n")
    assert isinstance(open_data(path)[0], NumberTable)
    kwargs = dict(model="a*x + b", data=str(path), y="y", x="x", sigma="s", absolute_sigma=True, optimizer="lm")
    fast = gradfit.fit(**kwargs)
    _pandas_path(monkeypatch)
    slow = gradfit.fit(**kwargs)
    assert fast.flat_params == slow.flat_params and fast.uncertainty == slow.uncertainty and fast.data == slow.data

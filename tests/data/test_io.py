"""read_table: round-trips, builtin: paths, and a DataError for every kind of bad file."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gradfit.data import data_file
from gradfit.data import io as io_mod
from gradfit.data.io import read_table
from gradfit.data.synthetic import blobs, linear
from gradfit.errors import DataError


@pytest.fixture
def frame():
    return pd.DataFrame({"x": [0.5, 1.25, -3.0], "n": [1, 2, 3], "flag": [True, False, True], "name": ["a", "b", "c"]})


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".txt", ","), (".tsv", "\t"), (".tab", "\t")])
def test_text_round_trip(tmp_path, frame, suffix, sep):
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, sep=sep, index=False)
    got = read_table(path)
    pd.testing.assert_frame_equal(got, frame, check_dtype=False)
    assert got["x"].dtype == np.float64 and got["flag"].dtype == bool


@pytest.mark.parametrize("name", ["data.parquet", "data.pq", "data.bin"])
def test_parquet_round_trip_and_sniffing(tmp_path, frame, name):
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_table(str(path)), frame, check_dtype=False)


def test_unknown_extension_is_read_as_csv_and_sniffs_tabs(tmp_path):
    pd.testing.assert_frame_equal(
        read_table(_write(tmp_path / "a.dat", "a,b\n1,2\n")), pd.DataFrame({"a": [1], "b": [2]})
    )
    pd.testing.assert_frame_equal(
        read_table(_write(tmp_path / "b.dat", "a\tb\n1\t2\n")), pd.DataFrame({"a": [1], "b": [2]})
    )


def test_compressed_csv(tmp_path, frame):
    path = tmp_path / "data.csv.gz"
    frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_table(path), frame, check_dtype=False)


def test_utf8_bom_and_text_are_kept(tmp_path):
    df = read_table(_write(tmp_path / "bom.csv", b"\xef\xbb\xbfa,b\n1,x\n2,3\n"))
    assert list(df.columns) == ["a", "b"]
    assert df["b"].tolist() == ["x", "3"]  # text is not coerced


def test_builtin_paths():
    pd.testing.assert_frame_equal(read_table("builtin:linear"), linear(), check_like=False)
    pd.testing.assert_frame_equal(read_table("builtin:linear?n=1000&seed=3"), linear(1000, seed=3))
    pd.testing.assert_frame_equal(read_table("builtin:blobs?n=20&spread=0.25"), blobs(20, spread=0.25))


@pytest.mark.parametrize(
    "path,match",
    [
        ("builtin:lineer", r"Unknown built-in dataset 'lineer'.*Did you mean 'linear'"),
        ("builtin:linear?n=ten", r"value of 'n' must be a number. Got 'ten'"),
        ("builtin:linear?m=3", r"does not take 'm'"),
        ("builtin:linear?n=0", r"'n' parameter must be an integer >= 1"),
    ],
)
def test_bad_builtin_paths(path, match):
    with pytest.raises(DataError, match=match):
        read_table(path)


def test_missing_file_suggests_close_names(tmp_path):
    _write(tmp_path / "measurements.csv", "a\n1\n")
    with pytest.raises(DataError, match=r"no such file.*Did you mean .*measurements\.csv"):
        read_table(tmp_path / "measurments.csv")


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"folder .* does not exist"):
        read_table(tmp_path / "nope" / "a.csv")


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a folder, not a file"):
        read_table(tmp_path)


def test_permission_denied(tmp_path, monkeypatch):
    path = _write(tmp_path / "secret.csv", "a\n1\n")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Tests may run as root, for whom chmod 000 changes nothing; fake the OS's answer instead.
    monkeypatch.setattr(data_file, "open", deny, raising=False)
    with pytest.raises(DataError, match=r"secret\.csv.*permission denied.*chmod"):
        read_table(path)


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("empty.csv", b"", r"empty\.csv.*empty \(0 bytes\)"),
        ("blank.csv", "\n\n", r"no columns"),
        ("header.csv", "a,b\n", r"header\.csv.*no data rows"),
        ("binary.csv", b"a,b\n\x00\x01\x02\x03", r"binary\.csv.*binary file.*NUL"),
        ("utf16.csv", "a,b\n1,2\n".encode("utf-16"), r"binary file"),
        ("sheet.csv", b"PK\x03\x04rest", r"zip archive.*Export it as CSV"),
        (
            "latin.csv",
            b"a,b\n1,2\n3,caf\xe9\n",
            r"latin\.csv.*not valid UTF-8: byte 0xe9 at offset 13 \(line 3\).*Re-save",
        ),
        ("long.csv", "a,b\n1,2\n3,4,5\n", r"long\.csv.*line 3 has 3 fields but the header has 2"),
        ("every.csv", "a,b\n1,2,3\n4,5,6\n", r"every\.csv.*line 2 has 3 fields but the header has 2"),
        ("short.csv", "a,b,c\n1,2,3\n4,5,6\n7,8\n", r"short\.csv.*line 4 has 2 fields but the header has 3"),
        ("semi.csv", "a;b;c\n1;2;3\n4;5\n", r"looks like ';'-separated, and its rows do not agree.*--sep ';'"),
        ("dups.csv", "a,b,a\n1,2,3\n", r"duplicate column names: 'a'"),
    ],
)
def test_bad_text_files(tmp_path, name, content, match):
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=match):
        read_table(path)


@pytest.mark.parametrize(
    "name,content,expected,note",
    [
        # Files once refused for their extension's separator are read in the one that splits every line.
        ("semi.csv", "a;b;c\n1;2;3\n", {"a": [1], "b": [2], "c": [3]}, "';'-separated"),
        ("euro.csv", "a;b\n1,5;2,5\n", {"a": [1.5], "b": [2.5]}, "';'-separated with decimal commas"),
        ("tabs.csv", "a\tb\n1\t2\n", {"a": [1], "b": [2]}, "tab-separated"),
        ("commas.tsv", "a,b\n1,2\n", {"a": [1], "b": [2]}, "comma-separated"),
    ],
)
def test_a_separator_other_than_the_extensions_is_detected_and_stated(tmp_path, name, content, expected, note):
    df = read_table(_write(tmp_path / name, content))
    pd.testing.assert_frame_equal(df, pd.DataFrame(expected))
    assert any(note in n and "detected" in n for n in df.attrs[io_mod.NOTES_ATTR])


def test_bad_utf8_far_into_a_big_file(tmp_path):
    body = b"a,b\n" + b"1,2\n" * 400_000 + b"3,\xff\n"
    path = _write(tmp_path / "big.csv", body)
    with pytest.raises(DataError, match=rf"byte 0xff at offset {len(body) - 2} \(line 400002\)"):
        read_table(path)


def test_trailing_delimiter_on_every_line_is_harmless(tmp_path):
    # A common export artefact: the empty last field is dropped, the data is not shifted.
    df = read_table(_write(tmp_path / "trailing.csv", "a,b\n1,2,\n4,5,\n"))
    pd.testing.assert_frame_equal(df, pd.DataFrame({"a": [1, 4], "b": [2, 5]}))


def test_short_row_with_legit_empty_fields_is_fine(tmp_path):
    df = read_table(_write(tmp_path / "gaps.csv", "a,b,c\n1,,3\n4,5,6\n"))
    assert df.shape == (2, 3) and np.isnan(df["b"][0])


def test_parquet_problems(tmp_path, frame):
    good = tmp_path / "good.parquet"
    frame.to_parquet(good)
    _write(tmp_path / "cut.parquet", good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.parquet.*truncated or corrupt"):
        read_table(tmp_path / "cut.parquet")
    _write(tmp_path / "text.parquet", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"looks like text.*\.csv"):
        read_table(tmp_path / "text.parquet")
    _write(tmp_path / "wrong.csv", good.read_bytes())
    with pytest.raises(DataError, match=r"is a Parquet file.*\.parquet"):
        read_table(tmp_path / "wrong.csv")
    pq.write_table(pa.table([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"]), tmp_path / "dups.parquet")
    with pytest.raises(DataError, match=r"duplicate column names: 'a'"):
        read_table(tmp_path / "dups.parquet")
    frame.iloc[:0].to_parquet(tmp_path / "none.parquet")
    with pytest.raises(DataError, match=r"no data rows"):
        read_table(tmp_path / "none.parquet")


def test_errors_are_not_raw_library_exceptions(tmp_path):
    with pytest.raises(DataError) as info:
        read_table(_write(tmp_path / "r.csv", "a,b\n1,2,3\n"))
    assert "Error tokenizing" not in str(info.value) and info.value.__cause__ is None
    assert os.fspath(tmp_path / "r.csv") in str(info.value)


def test_a_decimal_comma_given_for_a_comma_separated_file_is_no_internal_error(tmp_path):
    """The separator's scoring had no decimal mark left to try (max() of nothing, a ValueError): now the file
    is read as asked, its fields as text for as_dataset to read or report."""
    path = _write(tmp_path / "data.csv", "a,b\n1.5,2\n3,4.25\n")
    df = read_table(path, decimal=",")
    assert list(df.columns) == ["a", "b"] and len(df) == 2
    assert df.attrs[io_mod.READ_ATTR]["sep"] == "," and df.attrs[io_mod.READ_ATTR]["decimal"] == ","

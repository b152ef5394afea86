"""CSV as people save it: detected or given separators, decimal commas, thousands, encodings, no header.

Oracle: ``pandas.read_csv`` told the layout explicitly; the detected read must equal it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gradfit.data import io as io_mod
from gradfit.data.io import read_like, read_table
from gradfit.data.lines import row_numbers
from gradfit.errors import ConfigError, DataError

EURO = "Gewicht;Größe;Preis\n1.234,5;1,72;10,5\n980,25;1,8;-3,25\n12.000;1,65;1.000.000,5\n7;1,9;0,001\n"


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def _notes(df):
    return " ".join(df.attrs[io_mod.NOTES_ATTR])


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_european_csv_is_detected_and_equals_pandas_told_the_layout(tmp_path, encoding):
    path = _write(tmp_path / "euro.csv", EURO, encoding)
    oracle = pd.read_csv(path, sep=";", decimal=",", thousands=".", encoding=encoding)
    assert oracle["Gewicht"].tolist() == [1234.5, 980.25, 12000.0, 7.0]  # the oracle is right, too
    df = read_table(path, encoding=None if encoding == "utf-8" else encoding)
    pd.testing.assert_frame_equal(df, oracle)
    assert "';'-separated with decimal commas and '.' between thousands (detected" in _notes(df)
    assert df.attrs[io_mod.READ_ATTR] == {
        "sep": ";",
        "decimal": ",",
        "thousands": ".",
        "encoding": encoding,
        "header": True,
    }


def test_given_options_are_used_as_given(tmp_path):
    path = _write(tmp_path / "semi.txt", "a|b\n1,5|2\n3|4,25\n")
    df = read_table(path, sep="pipe", decimal=",")
    pd.testing.assert_frame_equal(df, pd.DataFrame({"a": [1.5, 3.0], "b": [2.0, 4.25]}))
    assert _notes(df) == ""  # nothing was detected, so nothing to state
    path = _write(tmp_path / "us.csv", 'x,y\n"1,234.5",2\n"2,000",3\n')
    pd.testing.assert_frame_equal(read_table(path, thousands=","), pd.DataFrame({"x": [1234.5, 2000.0], "y": [2, 3]}))


def test_comma_thousands_with_point_decimals_are_detected(tmp_path):
    path = _write(tmp_path / "t.csv", "x;y\n1,234.5;2\n2,000.25;3\n17.5;4\n")
    df = read_table(path)
    pd.testing.assert_frame_equal(df, pd.read_csv(path, sep=";", thousands=","))
    assert "',' between thousands" in _notes(df)


def test_semicolons_are_not_mistaken_for_decimal_commas_without_a_header(tmp_path):
    # Read with ',' every line has 3 fields too; the fields read as numbers only with ';' and decimal commas.
    path = _write(tmp_path / "nohead.csv", "1,5;2,25\n3,5;4\n5;6,75\n")
    df = read_table(path, header=False)
    pd.testing.assert_frame_equal(df, pd.DataFrame({"c1": [1.5, 3.5, 5.0], "c2": [2.25, 4.0, 6.75]}))


def test_a_file_without_a_header_gets_column_names_a_formula_can_use(tmp_path):
    path = _write(tmp_path / "raw.csv", "1,2.5,a\n2,4.5,b\n3,6.5,c\n")
    df = read_table(path, header=False)
    pd.testing.assert_frame_equal(df, pd.read_csv(path, header=None, names=["c1", "c2", "c3"]))
    assert row_numbers(df.attrs[io_mod.FIRST_ROW_ATTR], [0, 2]) == [
        1,
        3,
    ]  # data row 1 is line 1: messages count from there
    with pytest.raises(DataError, match=r"line 2 has 2 fields but the widest of the first lines has 3"):
        read_table(_write(tmp_path / "ragged.csv", "1,2,3\n4,5\n6,7,8\n"), header=False)


def test_whitespace_separated_instrument_files(tmp_path):
    path = _write(tmp_path / "nist.dat", "  x      y\n  1.0   2.5\n 10.0  20.25\n")
    df = read_table(path)
    pd.testing.assert_frame_equal(df, pd.DataFrame({"x": [1.0, 10.0], "y": [2.5, 20.25]}))
    assert "whitespace-separated" in _notes(df)


def test_a_bad_value_in_a_european_file_is_reported_by_its_line_only(tmp_path):
    import gradfit

    path = _write(tmp_path / "bad.csv", "x;y\n1,5;2\n2,5;3,25\n3;4,5x\n4;1.234,5\n")
    with pytest.raises(
        DataError, match=r"column 'y': text in a number column \(1 value, the first at line 4: '4,5x'\)"
    ):
        gradfit.fit("linear", path, y="y", steps=1)


def test_a_separator_that_splits_nothing_is_refused(tmp_path):
    path = _write(tmp_path / "c.csv", "x,y\n1,2\n3,4\n")
    with pytest.raises(
        DataError,
        match=r"the separator ';' \(--sep\) splits nothing: no line of the first 3 holds it "
        r"\(the first line is 'x,y'\); it looks comma-separated: use --sep ','",
    ):
        read_table(path, sep=";")


def test_encodings(tmp_path):
    text = "name,x,y\ncafé,1,2\nthé,2,3\n"
    latin = _write(tmp_path / "latin.csv", text, "latin-1")
    with pytest.raises(DataError, match=r"not valid UTF-8: byte 0xe9 .*\(line 2\).*--encoding latin-1"):
        read_table(latin)
    assert read_table(latin, encoding="latin-1")["name"].tolist() == ["café", "thé"]
    utf16 = _write(tmp_path / "u16.csv", text, "utf-16")
    with pytest.raises(DataError, match=r"binary file.*starts like UTF-16 text: read it with --encoding utf-16"):
        read_table(utf16)
    pd.testing.assert_frame_equal(read_table(utf16, encoding="utf-16"), read_table(latin, encoding="latin-1"))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_codec_that_refuses_the_file_is_named(tmp_path, encoding):
    """UTF-8 text read as utf-16 (no byte-order mark) was an internal UnicodeError, not a decoding error that
    errors="replace" mends. Found by tests/test_cli_corpus_batched.py."""
    plain = _write(tmp_path / "plain.csv", "x,y\n1,2\n2,3\n", "utf-8")
    with pytest.raises(DataError, match=rf"cannot be read as {encoding} text .*does not start with BOM.*--encoding"):
        read_table(plain, encoding=encoding)


@pytest.mark.parametrize(
    "read,message",
    [
        ({"sep": "ab"}, r"separator \(sep, --sep\) must be one character"),
        ({"decimal": ";"}, r"decimal mark .* must be '\.' or ','"),
        ({"sep": ",", "decimal": ","}, r"sep and the decimal are the same character"),
        ({"decimal": ",", "thousands": ","}, r"decimal and the thousands are the same character"),
        ({"encoding": "klingon"}, r"Unknown encoding 'klingon'"),
        ({"header": "no"}, r"'header' reading option must be True or False"),
        ({"dates": 3}, r"'dates' reading option must name columns"),
        ({"date_unit": "fortnights", "dates": ["t"]}, r"date unit of column 't' must be one of auto, seconds"),
        ({"date_origin": "yesterday-ish", "dates": ["t"]}, r"date origin of column 't' must be a date"),
        ({"seperator": ";"}, r"Unknown reading option\(s\): 'seperator' \(did you mean 'sep'\?\)"),
    ],
)
def test_reading_options_are_checked_at_the_door(tmp_path, read, message):
    import gradfit

    path = _write(tmp_path / "ok.csv", "t,y\n1,2\n2,3\n")
    with pytest.raises(ConfigError, match=message):
        gradfit.fit("linear", path, y="y", read=read, steps=1)


def test_text_options_do_not_apply_to_parquet_or_frames(tmp_path):
    import gradfit

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 4.0]})
    frame.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(ConfigError, match=r"sep apply to CSV/TSV text, but .*d\.parquet' is Parquet"):
        read_table(tmp_path / "d.parquet", sep=";")
    with pytest.raises(ConfigError, match=r"decimal apply to files; the data given is a DataFrame"):
        gradfit.fit("linear", frame, y="y", read={"decimal": ","}, steps=1)


def test_the_record_reads_the_same_numbers_again_and_read_like_redetects(tmp_path):
    import gradfit

    path = _write(
        tmp_path / "euro.csv", "when;x;y\n31.12.2020;1,5;2,5\n01.01.2021;2,5;4\n15.01.2021;3,25;5,5\n", "latin-1"
    )
    r = gradfit.fit("a*x + b*when + c", path, y="y", read={"encoding": "latin-1", "dates": ["when"]}, steps=0)
    again = read_table(path, **r.data["read"])
    assert again["when"].tolist() == [0.0, 1.0, 15.0] and again["x"].tolist() == [1.5, 2.5, 3.25]
    assert r.data["read_detected"] == ["sep", "decimal"] and r.data["dates"]["when"]["origin"] == "2020-12-31"
    # New data in another layout: the run's encoding and dates, the separators detected again.
    other = _write(tmp_path / "new.csv", "when,x,y\n02.01.2021,7,8\n", "latin-1")
    new = read_like(other, r.data)
    assert new.to_dict("list") == {"when": [2.0], "x": [7], "y": [8]}
    np.testing.assert_allclose(r.predict(new), [r.flat_params["a"] * 7 + r.flat_params["b"] * 2 + r.flat_params["c"]])

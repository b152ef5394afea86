"""Date and time columns become numbers in a stated unit since a stated origin.

Oracle: pandas told the exact format (``to_datetime(format=...)``), then ``(t - origin) / unit``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gradfit
from gradfit.analysis.fitted_data import run_data
from gradfit.data.dates import apply_dates, convert_dates
from gradfit.data.io import read_table
from gradfit.errors import DataError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _days(strings, fmt, origin):
    return ((pd.to_datetime(pd.Series(strings), format=fmt) - pd.Timestamp(origin)) / pd.Timedelta(days=1)).tolist()


ISO = ["2021-03-01", "2021-03-02", "2021-03-05", "2021-03-31", "2021-04-10"]


def test_iso_dates_in_a_fit_are_days_since_the_first_and_say_so(tmp_path):
    days = np.array(_days(ISO, "%Y-%m-%d", "2021-03-01"))
    y = 2.5 * days + 4
    path = _write(tmp_path / "iso.csv", "when,y\n" + "".join(f"{d},{v}\n" for d, v in zip(ISO, y)))
    r = gradfit.fit("a*when + b", path, y="y", read={"dates": ["when"]}, optimizer="lbfgs", dtype="float64", steps=30)
    np.testing.assert_allclose([r.flat_params["a"], r.flat_params["b"]], np.polyfit(days, y, 1), rtol=1e-7)
    assert r.data["dates"] == {"when": {"unit": "days", "origin": "2021-03-01"}}
    assert "column 'when' (ISO dates) converted to days since 2021-03-01" in r.data["notes"]
    assert r.data["read"]["dates"] == r.data["dates"]


@pytest.mark.parametrize(
    "strings,fmt,dayfirst",
    [
        (["31/12/2020", "01/01/2021", "15/02/2021"], "%d/%m/%Y", True),  # a first field above 12: day-first
        (["12/31/2020", "01/01/2021", "02/15/2021"], "%m/%d/%Y", False),  # a second field above 12: month-first
        (["01.02.2021", "03.04.2021", "05.06.2021"], "%d.%m.%Y", True),  # dots: day-first by convention
        (["31-12-20", "1-1-21", "15-2-21"], "%d-%m-%y", True),  # two-digit years are 20xx below 69
        (["2020/12/31", "2021/01/01", "2021/02/15"], "%Y/%m/%d", None),  # year first
    ],
)
def test_day_first_and_month_first_forms_equal_pandas_told_the_format(strings, fmt, dayfirst):
    df, records, notes = convert_dates(pd.DataFrame({"t": strings}), {"t": {}})
    origin = pd.to_datetime(pd.Series(strings), format=fmt).min()
    assert df["t"].tolist() == _days(strings, fmt, origin)
    assert records["t"].get("dayfirst") == dayfirst and records["t"]["unit"] == "days"


def test_ambiguous_day_order_is_asked_for_unless_the_file_says(tmp_path):
    strings = ["01/02/2021", "03/05/2021"]
    path = _write(tmp_path / "amb.csv", "t,y\n" + "".join(f"{d},1\n" for d in strings))
    with pytest.raises(DataError, match=r"column 't': every date could be day-first or month-first.*--dayfirst"):
        read_table(path, dates=["t"])
    assert read_table(path, dates=["t"], dayfirst=True)["t"].tolist() == _days(strings, "%d/%m/%Y", "2021-02-01")
    assert read_table(path, dates=["t"], dayfirst=False)["t"].tolist() == _days(strings, "%m/%d/%Y", "2021-01-02")
    # Decimal commas make it a European file, whose dates are day-first.
    euro = _write(tmp_path / "euro.csv", "t;y\n" + "".join(f"{d};1,5\n" for d in strings))
    df = read_table(euro, dates=["t"])
    assert df["t"].tolist() == _days(strings, "%d/%m/%Y", "2021-02-01")
    assert df.attrs["gradfit_read"]["dates"]["t"]["dayfirst"] is True


@pytest.mark.parametrize(
    "strings,unit,first,last",
    [
        (
            ["1958-03-01", "1980-01-01", "2001-12-01"],
            "years",
            0.0,
            (pd.Timestamp("2001-12-01") - pd.Timestamp("1958-03-01")).days / 365.25,
        ),
        (["2021-01-01 10:00", "2021-01-01 13:30"], "hours", 0.0, 3.5),
        (["2021-01-01 10:00:00", "2021-01-01 10:00:40"], "seconds", 0.0, 40.0),
        (["2021-01-01 10:00", "2021-01-01 10:12"], "minutes", 0.0, 12.0),
    ],
)
def test_the_unit_is_the_largest_the_data_spans_twice(strings, unit, first, last):
    df, records, notes = convert_dates(pd.DataFrame({"t": strings}), {"t": None})
    assert records["t"]["unit"] == unit
    assert df["t"].iloc[0] == pytest.approx(first) and df["t"].iloc[-1] == pytest.approx(last, rel=1e-12)
    assert f"converted to {unit} since" in notes[0]


def test_unit_origin_format_and_zones_as_given():
    df, rec, _ = convert_dates(
        pd.DataFrame({"t": ["2021-01-02", "2021-01-09"]}), {"t": {"unit": "weeks", "origin": "2021-01-01"}}
    )
    assert df["t"].tolist() == pytest.approx([1 / 7, 8 / 7]) and rec["t"]["origin"] == "2021-01-01"
    df, rec, _ = convert_dates(pd.DataFrame({"t": ["3 Mar 2021", "10 Mar 2021"]}), {"t": {"format": "%d %b %Y"}})
    assert df["t"].tolist() == [0.0, 7.0] and rec["t"]["format"] == "%d %b %Y"
    df, rec, notes = convert_dates(pd.DataFrame({"t": ["2021-01-01T10:00+01:00", "2021-01-01T12:00Z"]}), {"t": None})
    assert df["t"].tolist() == [0.0, 3.0] and rec["t"] == {"unit": "hours", "origin": "2021-01-01T09:00:00+00:00"}
    assert "converted to UTC" in notes[0]


def test_a_date_that_does_not_parse_names_the_column_the_line_and_the_fix(tmp_path):
    path = _write(tmp_path / "bad.csv", "when,y\n2021-01-01,1\n2021-01-02,2\n2021-02-31,3\n\n2021-13-01,4\n")
    with pytest.raises(
        DataError,
        match=r"'.*bad\.csv', column 'when': 2 values are not dates in the form YYYY-MM-DD "
        r"\[HH:MM\[:SS\]\] \(the first at line 4: '2021-02-31'\)\. Fix them, or leave "
        r"'when' out of --dates",
    ):
        read_table(path, dates=["when"])
    with pytest.raises(
        DataError,
        match=r"column 'when': 'March 3' at line 2 is not a date gradfit can read .* "
        r"--date-format",
    ):
        read_table(_write(tmp_path / "words.csv", "when,y\nMarch 3,1\n"), dates="when")
    with pytest.raises(DataError, match=r"the date column 'wen' named in --dates .* Did you mean 'when'\?"):
        read_table(path, dates=["wen"])


def test_a_dataframe_with_datetime_columns_is_converted_with_a_note_and_left_untouched():
    when = pd.to_datetime(["2020-01-01", "2020-01-11", "2020-01-21", "2020-02-10"])
    frame = pd.DataFrame({"when": when, "y": [1.0, 2.0, 2.9, 5.1]})
    before = frame.copy()
    r = gradfit.fit("linear", frame, y="y", optimizer="lbfgs", dtype="float64", steps=30)
    pd.testing.assert_frame_equal(frame, before)
    days = np.array([0.0, 10.0, 20.0, 40.0])
    np.testing.assert_allclose(list(r.flat_params.values()), np.polyfit(days, frame["y"], 1), rtol=1e-7)
    assert list(r.flat_params) == ["a[when]", "a[intercept]"]
    assert r.data["dates"] == {"when": {"unit": "days", "origin": "2020-01-01"}} and r.data["read"] is None
    assert "column 'when' (dates) converted to days since 2020-01-01" in r.data["notes"]
    # The same frame again (pictures, landscapes) and new dates (predictions) get the same conversion.
    assert run_data(r, frame).x[:, 0].tolist() == days.tolist()
    new = apply_dates(pd.DataFrame({"when": pd.to_datetime(["2020-03-01"])}), r.data["dates"])
    assert new["when"].tolist() == [60.0]


def test_durations_are_converted_without_an_origin():
    df, rec, notes = convert_dates(pd.DataFrame({"d": pd.to_timedelta(["30min", "2h", "5h"])}), {"d": None})
    assert df["d"].tolist() == [0.5, 2.0, 5.0] and rec["d"] == {"unit": "hours", "origin": None}

"""Wide tables (thousands to a million columns) are read as one block of numbers, and read right.

Issue 9: a CSV of 10^6 columns took 140-150 s and about 3 GB before anything happened, because
pandas builds a table column by column. The oracle for the values is NumPy on the same numbers;
that the one-block reader was the one used is checked with a spy (nothing here measures time).
A wide table that is not plain numbers falls back to the usual reader, which reports what it finds.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.data import csv_reader
from gradfit.data.io import read_table
from gradfit.data.wide_table import WIDE_COLUMNS
from gradfit.errors import DataError

runner = CliRunner()


def wide_text(columns: int, rows: int, seed: int = 0) -> tuple[str, np.ndarray, list[str]]:
    values = np.random.default_rng(seed).integers(-999, 999, size=(rows, columns)) / 8  # exact in binary
    names = [f"c{i}" for i in range(columns - 1)] + ["y"]
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in values)
    return ",".join(names) + "\n" + body + "\n", values, names


@pytest.fixture
def spy(monkeypatch):
    """Records what the one-block reader returned: a frame (it read the table) or None (it passed)."""
    seen = []
    real = csv_reader.read_numbers

    def recording(*args, **kwargs):
        frame = real(*args, **kwargs)
        seen.append(frame is not None)
        return frame

    monkeypatch.setattr(csv_reader, "read_numbers", recording)
    return seen


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_a_wide_numeric_table_is_read_in_one_block_with_the_right_values(tmp_path, spy, packed):
    text, values, names = wide_text(200_000, 3)
    path = tmp_path / ("w.csv.gz" if packed else "w.csv")
    path.write_bytes(gzip.compress(text.encode(), compresslevel=1) if packed else text.encode())
    df = read_table(path)
    assert spy == [True]
    assert list(df.columns) == names
    np.testing.assert_array_equal(df.to_numpy(), values)


def test_a_narrow_table_does_not_take_the_wide_path(tmp_path, spy):
    text, values, _ = wide_text(WIDE_COLUMNS, 3)
    (tmp_path / "n.csv").write_text(text)
    np.testing.assert_array_equal(read_table(tmp_path / "n.csv").to_numpy(), values)
    assert spy == []


def test_a_wide_table_with_text_falls_back_and_keeps_the_text(tmp_path, spy):
    text, values, names = wide_text(5_000, 3)
    lines = text.splitlines()
    cells = lines[2].split(",")
    cells[7] = "seven"
    lines[2] = ",".join(cells)
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    df = read_table(tmp_path / "t.csv")
    assert spy == [False]
    assert df["c7"].tolist()[1] == "seven"
    np.testing.assert_array_equal(df["y"].to_numpy(), values[:, -1])


@pytest.mark.parametrize("lead", ["", "\n\n"], ids=["", "blank lines first"])
def test_a_wide_table_with_a_name_column_reads_its_numbers_in_one_block(tmp_path, spy, lead):
    text, values, names = wide_text(20_000, 3)
    lines = text.splitlines()
    named = [f"id,{lines[0]}"] + [f'"row {k}, the {k}th",{line}' for k, line in enumerate(lines[1:])]
    (tmp_path / "n.csv").write_text(lead + "\n".join(named) + "\n")
    df = read_table(tmp_path / "n.csv")
    assert spy == [True]
    assert list(df.columns) == ["id", *names]
    assert df["id"].tolist() == ["row 0, the 0th", "row 1, the 1th", "row 2, the 2th"]
    np.testing.assert_array_equal(df[names].to_numpy(), values)
    # the oracle: pandas reading the same file column by column
    pd.testing.assert_frame_equal(
        df, pd.read_csv(tmp_path / "n.csv").astype({n: float for n in names}), check_dtype=False
    )


def test_a_wide_table_with_an_empty_field_falls_back(tmp_path, spy):
    text, values, names = wide_text(3_000, 3)
    lines = text.splitlines()
    cells = lines[3].split(",")
    cells[5] = ""
    lines[3] = ",".join(cells)
    lines = [f"id,{lines[0]}"] + [f"r{k},{line}" for k, line in enumerate(lines[1:])]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    df = read_table(tmp_path / "e.csv")
    assert spy == [False] and np.isnan(df["c5"].iloc[2]) and df["id"].tolist() == ["r0", "r1", "r2"]


def test_a_wide_table_with_a_short_row_names_its_line(tmp_path, spy):
    text, _, _ = wide_text(5_000, 4)
    lines = text.splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # the third data row, on line 4, lacks its last field
    (tmp_path / "r.csv").write_text("\n\n" + "\n".join(lines) + "\n")  # two blank lines first: it is on line 6
    with pytest.raises(DataError, match=r"line 6 has 4999 fields but the header has 5000"):
        read_table(tmp_path / "r.csv")


def test_a_wide_table_keeps_x_and_x_1_apart(tmp_path):
    text, values, names = wide_text(3_000, 2)
    text = text.replace("c1,", "c0.1,", 1)  # pandas' own spelling of a renamed duplicate, as a real name
    (tmp_path / "d.csv").write_text(text)
    df = read_table(tmp_path / "d.csv")
    assert list(df.columns[:2]) == ["c0", "c0.1"]
    np.testing.assert_array_equal(df["c0.1"].to_numpy(), values[:, 1])


def test_the_cli_fits_a_column_of_a_wide_table(tmp_path):
    n = 50
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, n)
    frame = pd.DataFrame(rng.normal(size=(n, 10_000)), columns=[f"c{i}" for i in range(10_000)])
    frame["x"], frame["y"] = x, 3 * x - 1 + 0.1 * rng.normal(size=n)
    frame.to_csv(tmp_path / "w.csv", index=False)
    result = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "w.csv"),
            "--y",
            "y",
            "--x",
            "x",
            "--model",
            "linear",
            "--optimizer",
            "lm",
            "--no-uncertainty",
            "-q",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    slope, intercept = np.polyfit(x, frame["y"], 1)
    params = json.loads((tmp_path / "out" / "result.json").read_text())["params"]
    np.testing.assert_allclose([params["a[0]"], params["a[1]"]], [slope, intercept], rtol=1e-6)


@pytest.mark.slow
def test_a_table_of_a_million_columns_is_read(tmp_path, spy):
    text, values, names = wide_text(1_000_000, 2)
    (tmp_path / "m.csv").write_text(text)
    df = read_table(tmp_path / "m.csv")
    assert spy == [True] and df.shape == (2, 1_000_000)
    np.testing.assert_array_equal(df["y"].to_numpy(), values[:, -1])

"""Messages name the line of the file a row is on, counting blank lines and the line ends inside quoted fields.

The oracle is the file's own text: the line on which the offending value (a unique marker) stands,
found by searching the lines, the way an editor's "go to line" would show it.
"""

from __future__ import annotations

import gzip
import re

import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.data.io import read_table
from gradfit.errors import DataError

runner = CliRunner()


def line_of(text: str, marker: str) -> int:
    """The 1-based line of ``text`` on which ``marker`` stands (it must stand on exactly one)."""
    hits = [i for i, line in enumerate(text.split("\n"), start=1) if marker in line]
    assert len(hits) == 1, hits
    return hits[0]


def fit_error(path, tmp_path) -> str:
    result = runner.invoke(
        app,
        [
            "fit",
            str(path),
            "--y",
            "y",
            "--x",
            "x",
            "--model",
            "linear",
            "--optimizer",
            "lm",
            "--no-uncertainty",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output and not (tmp_path / "out").exists()
    return result.output


CASES = {
    "a quoted field spanning lines": 'x,y,note\n1,2,"first\nsecond"\n2,4,c\n3,BAD,d\n4,8,e\n',
    "a quoted field spanning three lines": 'x,y,note\n1,2,"a\nb\nc"\n2,4,"d\ne"\n3,BAD,f\n',
    "blank lines before the header": "\n\n\nx,y\n1,2\n2,4\n3,BAD\n",
    "blank lines between rows": "x,y\n1,2\n\n\n2,4\n\n3,BAD\n4,8\n",
    "both, with CRLF line ends": '\r\n\r\nx,y,note\r\n1,2,"one\r\ntwo"\r\n\r\n3,BAD,z\r\n',
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_text_in_a_number_column_is_reported_at_its_real_line(tmp_path, name, packed):
    text = CASES[name]
    path = tmp_path / ("d.csv.gz" if packed else "d.csv")
    path.write_bytes(gzip.compress(text.encode()) if packed else text.encode())
    expected = line_of(text, "BAD")
    output = fit_error(path, tmp_path)
    assert re.search(
        rf"column 'y': text in a number column \(1 value, the first at line {expected}: 'BAD'\)",
        " ".join(output.split()),
    ), output


@pytest.mark.parametrize(
    "text,marker,fields",
    [
        ('x,y,note\n1,2,"a\nb"\n2,4,c\n3,6,d,EXTRA\n', "EXTRA", 4),
        ("\n\nx,y\n1,2\n\n2,4,EXTRA\n", "EXTRA", 3),
        ('x,y,note\n1,2,"a\n\nb"\n2,4\n', "2,4", 2),
    ],
)
def test_a_ragged_row_is_reported_at_its_real_line(tmp_path, text, marker, fields):
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_table(path)
    header = 3 if "note" in text else 2
    assert f"line {line_of(text, marker)} has {fields} fields but the header has {header}" in str(err.value)


def test_a_quoted_field_keeps_its_line_end(tmp_path):
    # The numbering must not change what is read: the multi-line note is one field, with its line end.
    path = tmp_path / "q.csv"
    path.write_text('x,y,note\n1,2,"first\nsecond"\n2,4,c\n')
    df = read_table(path)
    assert df["note"].tolist() == ["first\nsecond", "c"] and df["y"].tolist() == [2, 4]


def test_the_header_after_blank_lines_is_checked_like_any_header(tmp_path):
    # The header is the first non-blank line: its duplicate names are refused there too (pandas
    # would otherwise rename the second 'x' to 'x.1' without a word).
    (tmp_path / "plain.csv").write_text("x,x,y\n1,2,3\n")
    (tmp_path / "lead.csv").write_text("\n\nx,x,y\n1,2,3\n")
    with pytest.raises(DataError) as plain:
        read_table(tmp_path / "plain.csv")
    with pytest.raises(DataError) as lead:
        read_table(tmp_path / "lead.csv")
    assert str(lead.value).replace("lead.csv", "plain.csv") == str(plain.value)

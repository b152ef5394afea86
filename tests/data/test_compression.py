"""Compressed data files: the container is checked before any text is read, and every failure is a DataError.

Each example of issue 9 (a ``.csv.gz`` that is not gzip, a truncated gzip, a zip with two
members, a ``.zst`` without the zstandard package, a ``.csv.gz`` with columns ``x`` and ``x.1``)
is checked in the library and on the command line (exit 2, the message, nothing written).
The oracle for what a compressed file holds is the same table read uncompressed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
import zipfile

import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.data.io import read_table
from gradfit.errors import DataError

runner = CliRunner()
TABLE = b"x,y\n" + b"".join(b"%d,%d\n" % (i, 2 * i + 1) for i in range(5000))


def fit_cli(path, tmp_path):
    """``gradfit fit PATH`` into tmp_path/out: (exit code, output)."""
    result = runner.invoke(
        app,
        [
            "fit",
            str(path),
            "--y",
            "y",
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
    return result.exit_code, result.output


def refused(path, tmp_path, match: str) -> None:
    """``path`` is refused with a DataError matching ``match``, and by the CLI with exit 2, nothing written."""
    with pytest.raises(DataError, match=match):
        read_table(path)
    code, output = fit_cli(path, tmp_path)
    assert code == 2, output
    assert "internal error" not in output and "Traceback" not in output
    assert not (tmp_path / "out").exists()


def test_a_csv_gz_that_is_plain_text_is_told_apart_from_a_damaged_one(tmp_path):
    path = tmp_path / "a.csv.gz"
    path.write_bytes(TABLE)
    refused(
        path,
        tmp_path,
        r"'.*a\.csv\.gz': its name ends in \.gz, but it is not a gzip file \(it starts like plain "
        r"text: 'x,y'\)\. If it is plain text, rename it to 'a\.csv'",
    )


def test_a_gz_that_is_another_format_is_named_with_the_right_suffix(tmp_path):
    path = tmp_path / "b.csv.gz"
    path.write_bytes(bz2.compress(TABLE))
    refused(path, tmp_path, r"not a gzip file \(it is a bzip2 file\)\. Rename it to end in \.bz2 \(b\.csv\.bz2\)")


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)])
def test_a_truncated_file_is_called_truncated(tmp_path, suffix, compress):
    whole = compress(TABLE)
    path = tmp_path / f"t.csv{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    refused(
        path,
        tmp_path,
        r"'.*t\.csv\.\w+': the \w+ data is damaged: it ends before the end of its compressed "
        r"data, so the file is truncated",
    )


def test_a_gzip_with_a_bad_checksum_is_damaged(tmp_path):
    whole = bytearray(gzip.compress(TABLE))
    whole[-8] ^= 0xFF  # the CRC32 of the trailer
    path = tmp_path / "crc.csv.gz"
    path.write_bytes(bytes(whole))
    refused(path, tmp_path, r"the gzip data is damaged \(.*CRC.*\)\. Compress the file again")


def test_a_zip_with_two_members_names_them(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.csv", TABLE)
        z.writestr("b.csv", TABLE)
    refused(
        path,
        tmp_path,
        r"the zip archive holds 2 files \(a\.csv, b\.csv\); gradfit reads an archive that holds "
        r"exactly one\. Extract the one you want",
    )


def test_an_empty_zip_is_refused(tmp_path):
    path = tmp_path / "none.zip"
    zipfile.ZipFile(path, "w").close()
    refused(path, tmp_path, r"the zip archive holds no file")


def test_a_zip_with_one_member_and_a_folder_is_read(tmp_path):
    path = tmp_path / "one.csv.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data/", b"")
        z.writestr("data/a.csv", TABLE)
    plain = tmp_path / "a.csv"
    plain.write_bytes(TABLE)
    pd.testing.assert_frame_equal(read_table(path), read_table(plain))


def test_a_zst_without_the_zstandard_package_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # `import zstandard` raises ImportError, installed or not
    path = tmp_path / "z.csv.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 32)
    refused(
        path,
        tmp_path,
        r"'.*z\.csv\.zst': reading Zstandard-compressed files \(\.zst\) needs the Python package "
        r"'zstandard', which is not installed\. Install it \(pip install zstandard\), or decompress",
    )


@pytest.mark.parametrize(
    "suffix,compress", [("", lambda b: b), (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)]
)
def test_columns_x_and_x_1_are_not_duplicates_compressed_or_not(tmp_path, suffix, compress):
    body = b"x,x.1,y\n1,2,3\n2,3,5\n3,5,8\n4,4,9\n"
    path = tmp_path / f"dup.csv{suffix}"
    path.write_bytes(compress(body))
    df = read_table(path)
    assert list(df.columns) == ["x", "x.1", "y"]
    assert df["x.1"].tolist() == [2, 3, 5, 4]


def test_a_csv_gz_with_x_and_x_1_fits_as_the_plain_file_does(tmp_path):
    body = b"x,x.1,y\n" + b"".join(b"%d,%d,%d\n" % (i, (7 * i) % 11, 3 * ((7 * i) % 11) - 2) for i in range(40))
    (tmp_path / "dup.csv.gz").write_bytes(gzip.compress(body))
    result = runner.invoke(
        app,
        [
            "fit",
            str(tmp_path / "dup.csv.gz"),
            "--y",
            "y",
            "--x",
            "x.1",
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
    assert "duplicate" not in result.output.lower()
    assert (tmp_path / "out" / "result.json").is_file()


def test_a_truly_duplicated_header_is_still_refused_when_compressed(tmp_path):
    (tmp_path / "d.csv").write_bytes(b"x,x,y\n1,2,3\n")
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(b"x,x,y\n1,2,3\n"))
    with pytest.raises(DataError, match=r"[Dd]uplicate|twice|more than once") as plain:
        read_table(tmp_path / "d.csv")
    with pytest.raises(DataError) as packed:
        read_table(tmp_path / "d.csv.gz")
    assert str(packed.value).replace("d.csv.gz", "d.csv") == str(plain.value)

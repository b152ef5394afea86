"""A validation split must leave rows to fit on: refused (exit 2) when it would take them all.

Issue 9: ``--val-split`` leaving no training rows gave adam a ZeroDivisionError and lm an internal
error, also when ``--drop-nan`` had removed the rows that would have been left.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.data.convert import as_dataset
from gradfit.errors import DataError

runner = CliRunner()


@pytest.mark.parametrize("n", [2, 3, 4, 10, 101])
def test_every_fraction_below_the_stated_limit_keeps_a_row_and_every_one_above_is_refused(n):
    ds = as_dataset({"x": torch.arange(float(n)), "y": torch.arange(float(n))}, y="y")
    limit = (n - 0.5) / n
    for fraction in sorted({0.01, 0.3, 0.5, 0.74, 0.9, 0.99, limit - 1e-9, limit + 1e-9}):
        if not 0 < fraction < 1:
            continue
        if fraction < limit:
            train, val = ds.split(fraction, torch.Generator().manual_seed(0))
            assert len(train) >= 1 and len(val) >= 1 and len(train) + len(val) == n
        else:
            with pytest.raises(
                DataError,
                match=rf"val_split={fraction:g} of the {n} rows of .* leaves no row to fit on"
                rf".*below {limit:.3g}",
            ):
                ds.split(fraction, torch.Generator().manual_seed(0))


@pytest.fixture
def files(tmp_path):
    (tmp_path / "two.csv").write_text("x,y\n1,2\n2,4\n")
    (tmp_path / "gaps.csv").write_text("x,y\n1,2\n2,\n3,5\n")
    return tmp_path


@pytest.mark.parametrize(
    "data, options",
    [
        ("two.csv", ["--optimizer", "adam", "--val-split", "0.9"]),  # adam: ZeroDivisionError
        ("two.csv", ["--optimizer", "lm", "--val-split", "0.9"]),  # lm: internal error
        ("two.csv", ["--val-split", "0.75"]),  # the automatic choice; 0.75 rounds to 2 of 2
        ("gaps.csv", ["--drop-nan", "--val-split", "0.8"]),  # 2 rows left after --drop-nan, both to validation
    ],
)
def test_cli_refuses_a_split_that_leaves_no_training_row(files, data, options):
    out = files / "out"
    res = runner.invoke(app, ["fit", str(files / data), "--y", "y", "--model", "a*x+b", *options, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "leaves no row to fit on" in res.stderr and "--val-split" in res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.output
    assert not out.exists()

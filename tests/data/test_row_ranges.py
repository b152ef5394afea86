"""Blocks and row ranges of a streamed file (:mod:`gradfit.data.row_ranges`) against the file read whole."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gradfit.data.row_ranges import BLOCK_ROWS, file_blocks, group_of, kept_counts, merged, range_columns
from gradfit.data.streamed import StreamedRows
from gradfit.errors import ConfigError

N = 10_000
HOLES = [0, 2_499, 2_500, 9_999]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(2)
    y = rng.normal(size=N)
    y[HOLES] = np.nan
    return pd.DataFrame({"id": np.arange(N, dtype=float), "y": y, "z": np.ones(N)})


@pytest.fixture(scope="module")
def paths(frame, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ranges")
    frame.to_parquet(folder / "rows.parquet", row_group_size=2_500)
    frame.to_csv(folder / "rows.csv", index=False)
    return folder


def opened(paths, name, drop_nan=True):
    """The file with target y (with NaN, dropped) or z (without)."""
    return StreamedRows.open(paths / name, ["id"], "y" if drop_nan else "z", dtype=torch.float64, drop_nan=drop_nan)


def read(stream, ranges) -> list[list[int]]:
    """The ids of each range, as :func:`range_columns` yields them."""
    out: list[list[int]] = [[] for _ in ranges]
    for index, cols in range_columns(stream, ranges):
        out[index] += cols["id"].astype(int).tolist()
    return out


def test_merged_joins_what_touches():
    assert merged([(5, 9), (0, 2), (2, 4), (8, 12), (20, 20)]) == [(0, 4), (5, 12)]


def test_blocks_are_row_groups_cut_in_equal_pieces_or_runs_of_csv_rows(paths):
    parquet, csv = opened(paths, "rows.parquet"), opened(paths, "rows.csv")
    assert file_blocks(parquet) == [(0, 2_500), (2_500, 5_000), (5_000, 7_500), (7_500, 10_000)]
    assert file_blocks(parquet, 1_000)[:4] == [(0, 833), (833, 1_666), (1_666, 2_500), (2_500, 3_333)]
    assert file_blocks(csv, 3_000) == [(0, 3_000), (3_000, 6_000), (6_000, 9_000), (9_000, 10_000)]
    assert file_blocks(csv) == [(0, N)] and BLOCK_ROWS > N
    assert group_of(parquet, [0, 2_499, 2_500, 9_999]) == [0, 0, 1, 3] and group_of(csv, [5, 9_000]) == [0, 0]


@pytest.mark.parametrize("name", ["rows.parquet", "rows.csv"])
@pytest.mark.parametrize("drop_nan", [True, False])
def test_ranges_read_their_rows_in_the_order_given(paths, name, drop_nan):
    stream = opened(paths, name, drop_nan)
    ranges = [(0, 10), (2_400, 2_600), (2_600, 2_700), (6_000, 9_000), (9_990, 10_000)]
    if name == "rows.parquet":
        ranges = [ranges[3], ranges[0], ranges[4], ranges[2], ranges[1]]  # any order, a piece of a group too
    got = read(stream, ranges)
    for (a, b), ids in zip(ranges, got):
        expected = [i for i in range(a, b) if not (drop_nan and i in HOLES)]
        assert ids == expected
    assert kept_counts(stream, ranges) == [len(ids) for ids in got]


def test_a_csv_file_is_read_in_its_own_order(paths):
    with pytest.raises(ConfigError, match="CSV file is read in its own order"):
        read(opened(paths, "rows.csv"), [(100, 200), (0, 50)])
    with pytest.raises(ConfigError, match="0 <= start <= stop"):
        read(opened(paths, "rows.csv"), [(5, 2)])

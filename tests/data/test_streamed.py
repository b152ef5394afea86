"""StreamedRows: a Parquet or CSV file read batch by batch gives the chunks of the same rows read whole.

The oracle is the file read whole by pandas (or the in-memory ``as_dataset``) and sliced into chunks
by :class:`gradfit.rowpass.MemoryRows`; every bad input is a gradfit DataError, checked by its words.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from tests.helpers.peak import needs_proc, run_measured

from gradfit.data.convert import as_dataset
from gradfit.data.streamed import StreamedRows
from gradfit.errors import ConfigError, DataError
from gradfit.rowpass import MemoryRows, reduce

pq = pytest.importorskip("pyarrow.parquet")


def frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n) * 1e3,
            "y": rng.normal(size=n),
            "s": rng.uniform(0.5, 2.0, size=n),
            "w": rng.uniform(0.0, 3.0, size=n),
            "label": ["text"] * n,
        }
    )


@pytest.fixture(params=["parquet", "csv"])
def kind(request):
    return request.param


def write(df: pd.DataFrame, tmp_path, kind: str, name: str = "d", row_group_size: int = 300):
    path = tmp_path / f"{name}.{kind}"
    if kind == "parquet":
        df.to_parquet(path, index=False, row_group_size=row_group_size)
    else:
        df.to_csv(path, index=False)
    return path


def whole(path, kind: str) -> pd.DataFrame:
    return pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path)


def memory_rows(df, x, y, dtype, chunk_size, sigma=None, weights=None) -> MemoryRows:
    X = torch.tensor(df[x].to_numpy()).to(dtype).contiguous()  # rows first, as as_dataset stacks them
    Y = torch.tensor(df[y].to_numpy()).to(dtype)
    W = None
    if sigma is not None:
        W = (1.0 / torch.tensor(df[sigma].to_numpy()).to(dtype).double() ** 2).to(dtype)
    elif weights is not None:
        W = torch.tensor(df[weights].to_numpy()).to(dtype)
    return MemoryRows(X, Y, W, chunk_size=chunk_size)


def assert_same_chunks(streamed, memory):
    got, want = list(streamed), list(memory.chunks())
    assert len(got) == len(want)
    for (xs, ys, ws), (xm, ym, wm) in zip(got, want):
        assert xs.dtype == xm.dtype and torch.equal(xs, xm)
        assert torch.equal(ys, ym)
        assert (ws is None and wm is None) or torch.equal(ws, wm)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk_size", [1, 128, 300, 1000, 4096])
def test_chunks_equal_the_whole_file_sliced(tmp_path, kind, dtype, chunk_size):
    path = write(frame(), tmp_path, kind)
    rows = StreamedRows.open(path, ["x1", "x2"], "y", dtype=dtype, chunk_size=chunk_size)
    chunks = list(rows.chunks())
    sizes = [c[0].shape[0] for c in chunks]
    assert sizes[:-1] == [chunk_size] * (len(sizes) - 1) and sum(sizes) == 1000 and 0 < sizes[-1] <= chunk_size
    assert chunks[0][0].shape[1] == 2 and chunks[0][2] is None
    assert_same_chunks(chunks, memory_rows(whole(path, kind), ["x1", "x2"], "y", dtype, chunk_size))
    assert rows.x_names == ("x1", "x2") and rows.y_name == "y" and rows.source == str(path) and rows.dtype == dtype


def test_one_input_and_the_dtype_of_a_pass(tmp_path, kind):
    path = write(frame(), tmp_path, kind)
    rows = StreamedRows.open(path, "x1", "y", dtype="float64")
    df = whole(path, kind)
    assert_same_chunks(rows.chunks(chunk_size=77), memory_rows(df, ["x1"], "y", torch.float64, 77))
    assert_same_chunks(rows.chunks(chunk_size=77, dtype=torch.float32), memory_rows(df, ["x1"], "y", torch.float32, 77))


def test_the_in_memory_reader_gives_the_same_tensors(tmp_path, kind):
    path = write(frame(), tmp_path, kind)
    ds = as_dataset(path, ["x1", "x2"], "y", sigma="s", dtype=torch.float32)
    rows = StreamedRows.open(path, ["x1", "x2"], "y", sigma="s", chunk_size=10**6)
    ((x, y, w),) = list(rows.chunks())
    assert torch.equal(x, ds.x) and torch.equal(y, ds.y) and torch.equal(w, ds.w)


@pytest.mark.parametrize("option", ["sigma", "weights"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigma_and_weights(tmp_path, kind, option, dtype):
    path = write(frame(), tmp_path, kind)
    column = "s" if option == "sigma" else "w"
    rows = StreamedRows.open(path, ["x1"], "y", dtype=dtype, chunk_size=250, **{option: column})
    df = whole(path, kind)
    assert_same_chunks(rows.chunks(), memory_rows(df, ["x1"], "y", dtype, 250, **{option: column}))
    expected = (1 / df.s**2).sum() if option == "sigma" else df.w.sum()
    assert rows.scan().weight_sum == pytest.approx(expected, rel=1e-6 if dtype == torch.float32 else 1e-12)


def test_x_none_takes_every_column_but_the_target_and_the_weights(tmp_path):
    df = frame().drop(columns="label")
    path = write(df, tmp_path, "parquet")
    assert StreamedRows.open(path, None, "y", sigma="s").x_names == ("x1", "x2", "w")
    assert StreamedRows.open(path, None, "y", weights="w").x_names == ("x1", "x2", "s")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reduce_over_the_stream_is_reduce_over_memory_bit_for_bit(tmp_path, kind, dtype):
    path = write(frame(5000), tmp_path, kind, row_group_size=777)
    rows = StreamedRows.open(path, ["x1", "x2"], "y", weights="w", dtype=dtype, chunk_size=512)

    def fn(x, y, w):
        r = y - x @ torch.tensor([0.3, -1e-3], dtype=x.dtype)
        return {"loss": (w * r * r).sum(), "grad": (w[:, None] * r[:, None] * x).sum(0), "xtx": x.T @ x}

    streamed = reduce(fn, rows)
    memory = reduce(fn, memory_rows(whole(path, kind), ["x1", "x2"], "y", dtype, 512, weights="w"))
    for key in memory:
        assert streamed[key].dtype == torch.float64 and torch.equal(streamed[key], memory[key]), key


def test_only_the_used_columns_are_read(tmp_path, kind):
    df = frame(50)
    df["label"] = ["a", "b"] * 25  # text: fails as a number in either format
    path = write(df, tmp_path, kind)
    rows = StreamedRows.open(path, ["x1"], "y")
    assert len(rows) == 50 and sum(c[0].shape[0] for c in rows.chunks()) == 50
    with pytest.raises(DataError, match="label"):
        StreamedRows.open(path, ["x1", "label"], "y").scan()


def test_parquet_types(tmp_path):
    df = pd.DataFrame({"i": np.arange(10, dtype=np.int64), "f": np.arange(10, dtype=np.float32) / 3, "b": [True] * 10})
    df["y"] = df.i * 2.0
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    ((x, y, _),) = list(StreamedRows.open(path, ["i", "f", "b"], "y", dtype=torch.float64).chunks())
    assert torch.equal(x, torch.tensor(df[["i", "f", "b"]].to_numpy(dtype=np.float64)))


def test_drop_nan_skips_the_same_rows_in_every_pass(tmp_path, kind):
    df = frame(400).drop(columns="label")
    df.loc[[3, 100, 101, 399], "x1"] = np.nan
    df.loc[[7], "y"] = np.nan
    df.loc[[50], "x2"] = np.nan
    path = write(df, tmp_path, kind, row_group_size=64)
    rows = StreamedRows.open(path, ["x1", "x2"], "y", sigma="s", dtype=torch.float64, drop_nan=True, chunk_size=60)
    scan = rows.scan()
    assert scan.n_rows == len(rows) == 394 and scan.dropped == 6 and scan.file_rows == 400
    label = "lines 5, 9, 52, 102, 103, 401" if kind == "csv" else "rows 3, 7, 50, 100, 101, 399"
    assert scan.note == f"dropped 6 rows with missing values ({label})"
    report: list = []
    as_dataset(path, ["x1", "x2"], "y", drop_nan=True, sigma="s", report=report)
    assert report == [scan.note]  # the in-memory reader's words
    kept = whole(path, kind).dropna(subset=["x1", "x2", "y"])
    memory = memory_rows(kept, ["x1", "x2"], "y", torch.float64, 60, sigma="s")
    assert_same_chunks(rows.chunks(), memory)
    assert_same_chunks(rows.chunks(), memory)  # a second pass drops the same rows
    assert scan.sums["x1"] == pytest.approx(kept.x1.sum(), rel=1e-12)
    ds = as_dataset(path, ["x1", "x2"], "y", drop_nan=True, dtype=torch.float64)
    assert torch.equal(torch.cat([c[0] for c in rows.chunks()]), ds.x)


def test_scan_statistics_and_sample(tmp_path, kind):
    df = frame(3001)
    path = write(df, tmp_path, kind, row_group_size=500)
    rows = StreamedRows.open(path, ["x1", "x2"], "y", weights="w", dtype=torch.float64)
    scan = rows.scan(sample_rows=100)
    df = whole(path, kind)
    for name in ("x1", "x2", "y"):
        assert scan.sums[name] == pytest.approx(df[name].sum(), rel=1e-12)
        assert scan.squares[name] == pytest.approx((df[name] ** 2).sum(), rel=1e-12)
        assert scan.mins[name] == df[name].min() and scan.maxs[name] == df[name].max()
    x, y, w = scan.sample
    assert scan.stride == 32 and x.shape == (94, 2)  # rows 0, 32, ..., 2976: at most 100, evenly strided
    picked = df.iloc[:: scan.stride]
    assert torch.equal(x, torch.tensor(picked[["x1", "x2"]].to_numpy()))
    assert torch.equal(y, torch.tensor(picked.y.to_numpy())) and torch.equal(w, torch.tensor(picked.w.to_numpy()))
    assert rows.scan() is scan  # cached: one pass


@pytest.mark.parametrize("bounds", [(0, 1000), (0, 0), (250, 251), (299, 601), (900, 5000), (1000, 1000)])
def test_row_ranges_are_file_rows(tmp_path, kind, bounds):
    df = frame()
    path = write(df, tmp_path, kind, row_group_size=300)
    rows = StreamedRows.open(path, ["x1", "x2"], "y", dtype=torch.float64, chunk_size=128)
    part = whole(path, kind).iloc[bounds[0] : bounds[1]]
    assert_same_chunks(list(rows.chunks(rows=bounds)), memory_rows(part, ["x1", "x2"], "y", torch.float64, 128))


def test_row_ranges_with_drop_nan_count_file_rows(tmp_path, kind):
    df = frame(500).drop(columns="label")
    df.loc[[10, 120, 121, 260], "y"] = np.nan
    path = write(df, tmp_path, kind, row_group_size=100)
    rows = StreamedRows.open(path, ["x1"], "y", dtype=torch.float64, drop_nan=True, chunk_size=50)
    part = whole(path, kind).iloc[100:300].dropna()
    assert_same_chunks(list(rows.chunks(rows=(100, 300))), memory_rows(part, ["x1"], "y", torch.float64, 50))


def test_it_is_a_row_source_and_targets_are_optional(tmp_path):
    from gradfit.rowpass import RowSource

    df = frame(100)
    df["i"] = pd.array([None] + list(range(1, 100)), dtype="Int64")  # nullable integers: a null is missing
    path = write(df, tmp_path, "parquet")
    rows = StreamedRows.open(path, ["x1", "i"], None, dtype=torch.float64, drop_nan=True)
    assert isinstance(rows, RowSource) and rows.y_name is None
    ((x, y, w),) = list(rows.chunks())
    assert y is None and w is None and x.shape == (99, 2) and x[:, 1].tolist() == [float(i) for i in range(1, 100)]
    assert rows.scan().note == "dropped 1 row with missing values (row 0)" and set(rows.scan().sums) == {"x1", "i"}


def test_a_parquet_file_without_rows(tmp_path):
    path = write(frame(0), tmp_path, "parquet")
    with pytest.raises(DataError, match="has columns \\(x1, x2, y, s, w, label\\) but no data rows"):
        StreamedRows.open(path, ["x1"], "y").scan()


def test_a_bad_row_range_is_refused(tmp_path):
    rows = StreamedRows.open(write(frame(), tmp_path, "parquet"), ["x1"], "y")
    with pytest.raises(ConfigError, match="start <= stop"):
        list(rows.chunks(rows=(5, 2)))


def test_a_decimal_comma_csv(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("a;b\n1,5;2,25\n3,0;4,5\n-1,5;0,5\n")
    ((x, y, _),) = list(StreamedRows.open(path, ["a"], "b", dtype=torch.float64).chunks())
    assert x[:, 0].tolist() == [1.5, 3.0, -1.5] and y.tolist() == [2.25, 4.5, 0.5]


def test_csv_quirks_read_as_the_in_memory_reader_reads_them(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b'\xef\xbb\xbfx,y,note\r\n 1.5 ,"2",a\r\n\r\n3,4e1,"two, lines\r\nhere"\r\n-0,NaN,c\r\n')
    ds = as_dataset(path, ["x"], "y", dtype=torch.float64, drop_nan=True)
    rows = StreamedRows.open(path, ["x"], "y", dtype=torch.float64, drop_nan=True)
    ((x, y, _),) = list(rows.chunks())
    assert torch.equal(x, ds.x) and torch.equal(y, ds.y) and y.tolist() == [2.0, 40.0]
    assert rows.scan().note == "dropped 1 row with missing values (line 6)"


def test_a_csv_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("x,y,caf\xe9\n1,2,3\n4,5,6\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        StreamedRows.open(path, ["x"], "y")


# Bad input: each is a DataError (never a pyarrow or pandas exception) saying what and where.


def test_missing_columns_are_named_with_a_suggestion(tmp_path, kind):
    path = write(frame(), tmp_path, kind)
    with pytest.raises(DataError) as err:
        StreamedRows.open(path, ["x1", "x_2"], "yy", sigma="sigma")
    text = str(err.value)
    assert "2 problems" not in text and "3 problems" in text
    assert "target (y) column 'yy' not found. Available columns: x1, x2, y, s, w, label. Did you mean 'y'?" in text
    assert "input (x) column 'x_2' not found" in text and "Did you mean 'x2'?" in text
    assert "sigma column 'sigma' not found. Available columns: x1, x2, y, s, w, label.\n" in text  # no near name


def test_text_in_a_number_column_names_the_line(tmp_path):
    path = tmp_path / "t.csv"
    lines = ["x,y,z"] + [f"{i},{2 * i},{i}" for i in range(200)]
    lines[150] = "149,abc,1"  # the 150th data row, on line 151
    path.write_text("\n\n".join(lines[:3]) + "\n" + "\n".join(lines[3:]) + "\n")  # two blank lines: line 153
    rows = StreamedRows.open(path, ["x"], "y")
    with pytest.raises(DataError) as err:
        rows.scan()
    assert "column 'y': text in a number column (the first at line 153: 'abc')" in str(err.value)
    with pytest.raises(DataError, match="line 153"):
        list(rows.chunks())
    in_memory = pytest.raises(DataError, match="line 153")
    with in_memory:
        as_dataset(path, ["x"], "y")
    assert len(StreamedRows.open(path, ["x"], "z")) == 200  # the bad column unused


def test_nan_without_drop_nan_names_lines(tmp_path, kind):
    df = frame(100).drop(columns="label")
    df.loc[[4, 9], "y"] = np.nan
    path = write(df, tmp_path, kind, row_group_size=7)
    with pytest.raises(DataError) as err:
        StreamedRows.open(path, ["x1"], "y").scan()
    where = "lines 6, 11" if kind == "csv" else "rows 4, 9"
    assert f"column 'y': 2 missing values (NaN or empty) at {where}. Clean the data or pass drop_nan=True" in str(
        err.value
    )
    with pytest.raises(DataError, match=where):  # the in-memory reader says the same
        as_dataset(path, ["x1"], "y")


def test_inf_and_overflow(tmp_path, kind):
    df = frame(20).drop(columns="label")
    df.loc[3, "x1"] = np.inf
    df.loc[5, "x2"] = 1e300
    path = write(df, tmp_path, kind)
    with pytest.raises(DataError) as err:
        StreamedRows.open(path, ["x1", "x2"], "y", drop_nan=True).scan()
    text = str(err.value)
    at3, at5 = ("line 5", "line 7") if kind == "csv" else ("row 3", "row 5")
    assert f"column 'x1': 1 value infinite (inf or -inf) at {at3}" in text
    assert f"column 'x2': 1 value too large for float32 at {at5}. Fit in float64" in text
    with pytest.raises(DataError, match="infinite"):
        StreamedRows.open(path, ["x1"], "y", dtype=torch.float64).scan()
    assert len(StreamedRows.open(path, ["x2"], "y", dtype=torch.float64)) == 20


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("sigma", 0.0, "1 sigma value(s) <= 0 at"),
        ("sigma", -2.0, "1 sigma value(s) <= 0 at"),
        ("weights", -1.0, "1 negative weight(s) at"),
        ("sigma", 1e-30, "1 sigma value(s) so small that 1/sigma² overflows torch.float32"),
    ],
)
def test_bad_sigma_and_weights(tmp_path, kind, option, value, words):
    df = frame(30)
    df.loc[12, "s" if option == "sigma" else "w"] = value
    path = write(df, tmp_path, kind)
    with pytest.raises(DataError) as err:
        StreamedRows.open(path, ["x1"], "y", **{option: "s" if option == "sigma" else "w"}).scan()
    assert words in str(err.value) and ("line 14" if kind == "csv" else "row 12") in str(err.value)
    with pytest.raises(DataError, match=re.escape(words)):
        as_dataset(path, ["x1"], "y", **{option: "s" if option == "sigma" else "w"})  # the in-memory words


def test_all_weights_zero(tmp_path, kind):
    df = frame(30)
    df["w"] = 0.0
    with pytest.raises(DataError, match="every weight is 0"):
        StreamedRows.open(write(df, tmp_path, kind), ["x1"], "y", weights="w").scan()


def test_a_text_column_of_a_parquet_file_is_refused_at_the_door(tmp_path):
    path = write(frame(), tmp_path, "parquet")
    with pytest.raises(DataError, match="column 'label': holds (large_)?string, not numbers"):
        StreamedRows.open(path, ["x1", "label"], "y")


@pytest.mark.parametrize(
    "content, words",
    [
        ("", "the file is empty"),
        ("x,y\n", "has columns (x, y) but no data rows"),
        ("x,y\n1,2\n", "1 row, but at least 2 are needed"),
        ("\n\n", "only blank lines"),
        ("x,y\n1,2\n3,4,5\n", "a row with 3 fields where the header has 2"),
        ("x,y,x\n1,2,3\n", "duplicate column names"),
    ],
)
def test_bad_csv_files(tmp_path, content, words):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        StreamedRows.open(path, ["x"], "y").scan()
    assert words in str(err.value)


def test_bad_parquet_files(tmp_path):
    good = write(frame(), tmp_path, "parquet")
    data = good.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="as Parquet: .*truncated or corrupt"):
        StreamedRows.open(cut, ["x1"], "y")
    text = tmp_path / "text.parquet"
    text.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match="It looks like text: if it is CSV, name the file .csv"):
        StreamedRows.open(text, ["x"], "y")
    damaged = tmp_path / "damaged.parquet"  # footer intact, column pages overwritten
    damaged.write_bytes(data[:4] + b"\xff" * (len(data) // 2) + data[4 + len(data) // 2 :])
    with pytest.raises(DataError, match="as Parquet"):
        StreamedRows.open(damaged, ["x1", "x2"], "y").scan()


def test_missing_files_folders_and_compressed_files(tmp_path):
    write(frame(), tmp_path, "parquet", name="data")
    with pytest.raises(DataError, match="no such file.*Did you mean"):
        StreamedRows.open(tmp_path / "dta.parquet", ["x1"], "y")
    with pytest.raises(DataError, match="it is a folder, not a file"):
        StreamedRows.open(tmp_path, ["x1"], "y")
    gz = tmp_path / "d.csv.gz"
    gz.write_bytes(b"\x1f\x8b" + b"\0" * 30)
    with pytest.raises(DataError, match="compressed file"):
        StreamedRows.open(gz, ["x"], "y")


def test_options_are_checked(tmp_path):
    path = write(frame(), tmp_path, "parquet")
    with pytest.raises(ConfigError, match="sigma or weights, not both"):
        StreamedRows.open(path, ["x1"], "y", sigma="s", weights="w")
    with pytest.raises(ConfigError, match="dtype"):
        StreamedRows.open(path, ["x1"], "y", dtype=torch.int64)
    with pytest.raises(DataError, match="both the target"):
        StreamedRows.open(path, ["x1", "y"], "y")


# Memory: a pass holds a batch, never the file. Measured in a fresh interpreter, from its resident memory after
# the imports to its peak (Linux's VmHWM, reset through /proc/self/clear_refs). On 10^7 rows (a 165 MB Parquet
# file) this was 78 MB, of which about 57 MB is pyarrow's first use of its Parquet reader (code and thread pools,
# the same on 1,000 rows); holding the file (pre_buffer=True) measured 373 MB. The 387 MB CSV file: 115 MB.
PEAK_BOUND = 300e6
POOL_BOUND = 64e6  # pyarrow's own allocations: 10 MB (Parquet), 39 MB (CSV) measured; 173 MB when the file is held

MEASURE = """
import sys
import pyarrow as pa, torch
from gradfit.data.streamed import StreamedRows
from gradfit.rowpass import reduce

reset_peak()
rows = StreamedRows.open(sys.argv[1], ["x"], "y", dtype=torch.float64)
scan = rows.scan()
passes = [reduce(lambda x, y, w: (x.sum(), y.sum(), (x[:, 0] * y).sum(), (x * x).sum()), rows) for _ in range(2)]
print_measured(
    pool=pa.default_memory_pool().max_memory(), n=len(rows),
    scan=[scan.sums["x"], scan.sums["y"], scan.squares["x"]], passes=[[float(s) for s in p] for p in passes],
)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_pass_over_ten_million_rows_holds_a_batch_not_the_file(tmp_path, kind):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    needs_proc()
    n = 10**7
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    y = 2.0 * x + 1.0 + 0.1 * rng.normal(size=n)
    table = pa.table({"x": x, "y": y, "unused": rng.normal(size=n)})
    path = tmp_path / f"big.{kind}"
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=10**6)
    else:
        pcsv.write_csv(table, path)  # 387 MB of text
    del x, y, table
    got = run_measured(MEASURE, path, timeout=600)
    whole = pq.read_table(path, columns=["x", "y"]) if kind == "parquet" else pcsv.read_csv(path)
    x, y = whole.column("x").to_numpy(), whole.column("y").to_numpy()
    expected = [x.sum(), y.sum(), np.dot(x, y), np.dot(x, x)]
    assert got["n"] == n
    for sums in got["passes"]:
        assert sums == pytest.approx(expected, rel=1e-10)
    assert got["passes"][0] == got["passes"][1]  # the same chunks in the same order: the same bits
    assert got["scan"] == pytest.approx([expected[0], expected[1], expected[3]], rel=1e-10)
    assert got["peak"] < PEAK_BOUND, f"peak resident memory grew {got['peak'] / 1e6:.0f} MB"
    assert got["pool"] < POOL_BOUND, f"pyarrow allocated up to {got['pool'] / 1e6:.0f} MB"

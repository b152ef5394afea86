"""Mini-batches of a streamed file (:mod:`gradfit.train.stream_batches`) and its validation split by blocks.

The oracle is the file read whole with pandas: each file has an ``id`` column (its row number), read as an input,
so the rows of each batch name themselves. Small row groups, windows and batches make every epoch span several
windows, with batches that straddle two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tests.helpers.checkpoints import assert_same_fit, fit_stopped_at
from tests.helpers.peak import needs_proc, run_measured

import gradfit
from gradfit.data.file_rows import open_file_rows
from gradfit.train import stream_batches
from gradfit.train.stream_batches import StreamBatches

N = 24_000
GROUP = 1_500  # Parquet rows per row group: 16 blocks
BUFFER = 4_000  # rows per shuffle window: 2 row groups (Parquet), 4_000 rows (CSV)
BATCH = 700  # does not divide a window: batches straddle windows
NAN_ROWS = [3, 1_499, 1_500, 7_777, 23_999]
pytestmark = pytest.mark.filterwarnings("ignore:Ran the full budget")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(5)
    x = rng.normal(size=N)
    frame = pd.DataFrame({"id": np.arange(N, dtype=float), "x": x, "y": 2.0 * x + 1.0 + 0.3 * rng.normal(size=N)})
    folder = tmp_path_factory.mktemp("batches")
    frame.to_parquet(folder / "rows.parquet", row_group_size=GROUP)
    frame.to_csv(folder / "rows.csv", index=False)
    holes = frame.copy()
    holes.loc[NAN_ROWS, "y"] = np.nan
    holes.to_parquet(folder / "holes.parquet", row_group_size=GROUP)
    holes.to_csv(folder / "holes.csv", index=False)
    return folder, frame


@pytest.fixture
def small_windows(monkeypatch):
    """Fits take windows of BUFFER rows (the default, 2^20, would hold these files whole)."""
    monkeypatch.setattr(stream_batches, "BUFFER_ROWS", BUFFER)


def rows_of(folder, name, drop_nan=False):
    return open_file_rows(folder / name, ["id", "x"], "y", dtype=torch.float64, drop_nan=drop_nan)


def epochs(rows, shuffle=True, seed=0, n_epochs=2, batch=BATCH, start=0, state=None):
    """The batches of ``n_epochs`` epochs from step ``start`` (a fresh schedule, its generator at ``state``)."""
    generator = torch.Generator().manual_seed(seed)
    batches = StreamBatches(rows, batch, shuffle, generator, buffer_rows=BUFFER)
    batches.load_state_dict(state)
    return batches, [batches.take(k) for k in range(start, n_epochs * batches.per_epoch)]


def ids(taken) -> list[int]:
    return torch.cat([x[:, 0] for x, _, _ in taken]).long().tolist()


@pytest.mark.parametrize("name", ["rows.parquet", "rows.csv"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_each_epoch_takes_every_row_once_with_the_files_values(files, name, shuffle):
    folder, frame = files
    batches, taken = epochs(rows_of(folder, name), shuffle)
    per = batches.per_epoch
    assert per == -(-N // BATCH) and len(batches.windows) >= 6  # several windows
    assert all(len(x) == BATCH for x, _, _ in taken[: per - 1])  # full batches but each epoch's last
    first, second = ids(taken[:per]), ids(taken[per:])
    assert sorted(first) == sorted(second) == list(range(N))
    if shuffle:
        assert first != list(range(N)) and first != second  # a new order each epoch
    else:
        assert first == second == list(range(N))  # the file's order
    for x, y, w in taken:
        at = x[:, 0].long().numpy()
        np.testing.assert_array_equal(x[:, 1].numpy(), frame["x"].to_numpy()[at])
        np.testing.assert_array_equal(y.numpy(), frame["y"].to_numpy()[at])
        assert w is None


@pytest.mark.parametrize("name", ["rows.parquet", "rows.csv"])
def test_the_same_seed_takes_the_same_batches_and_another_seed_others(files, name):
    rows = rows_of(files[0], name)
    a, b, c = (epochs(rows, seed=s)[1] for s in (3, 3, 4))
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert ids(a) != ids(c)


def test_rows_are_shuffled_within_windows_and_parquet_blocks_across_the_file(files):
    folder = files[0]
    for name, block_order in (("rows.csv", False), ("rows.parquet", True)):
        batches, taken = epochs(rows_of(folder, name), n_epochs=1)
        order = ids(taken)
        for w, window in enumerate(batches.windows):
            rows = sorted(order[batches.starts[w] : batches.starts[w + 1]])
            expected = [i for b in window for i in range(*batches.blocks[b])]
            assert rows == sorted(expected)  # a window is whole blocks
        in_file_order = [b for window in batches.windows for b in window] == list(range(len(batches.blocks)))
        assert in_file_order != block_order  # a CSV file is read in its order; Parquet blocks are shuffled


@pytest.mark.parametrize("name", ["holes.parquet", "holes.csv"])
def test_rows_dropped_for_nan_never_appear(files, name):
    rows = rows_of(files[0], name, drop_nan=True)
    assert len(rows) == N - len(NAN_ROWS)
    batches, taken = epochs(rows)
    per = batches.per_epoch
    kept = sorted(set(range(N)) - set(NAN_ROWS))
    assert sorted(ids(taken[:per])) == sorted(ids(taken[per:])) == kept
    assert all(torch.isfinite(y).all() for _, y, _ in taken)


@pytest.mark.parametrize("name", ["rows.parquet", "holes.csv"])
@pytest.mark.parametrize("stop", [1, 20, 34 + 13])  # in the first window, mid-epoch, in the second epoch
def test_a_resumed_schedule_takes_the_batches_of_one_never_stopped(files, name, stop):
    rows = rows_of(files[0], name, drop_nan=name.startswith("holes"))
    _, whole = epochs(rows, seed=7)
    generator = torch.Generator().manual_seed(7)
    stopped = StreamBatches(rows, BATCH, True, generator, buffer_rows=BUFFER)
    for k in range(stop):
        stopped.take(k)
    _, resumed = epochs(rows, seed=99, start=stop, state=stopped.state_dict())  # the saved state, not the seed
    assert len(resumed) == len(whole) - stop
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(resumed, whole[stop:]))


def test_weighted_rows_keep_their_weights_in_float32(files, tmp_path):
    folder, frame = files
    sigma = 0.1 + frame["x"].abs().to_numpy()
    frame.assign(s=sigma).to_parquet(tmp_path / "sigma.parquet", row_group_size=GROUP)
    rows = open_file_rows(tmp_path / "sigma.parquet", ["id", "x"], "y", sigma="s", dtype=torch.float32)
    _, taken = epochs(rows, n_epochs=1)
    assert sorted(ids(taken)) == list(range(N))
    for x, y, w in taken:
        at = x[:, 0].long().numpy()
        assert x.dtype == y.dtype == w.dtype == torch.float32
        s32 = sigma[at].astype(np.float32).astype(np.float64)  # as the in-memory reader: sigma in the fit's dtype
        np.testing.assert_array_equal(w.numpy(), (1.0 / s32**2).astype(np.float32))
        np.testing.assert_array_equal(y.numpy(), frame["y"].to_numpy()[at].astype(np.float32))


@pytest.fixture
def rows_read(monkeypatch):
    """The Parquet rows pyarrow decodes, counted (a row read and dropped counts)."""
    from gradfit.data.file_batches import FileBatches

    count = [0]
    original = FileBatches._parquet

    def counted(self, *args):
        for at, n, cols in original(self, *args):
            count[0] += n
            yield at, n, cols

    monkeypatch.setattr(FileBatches, "_parquet", counted)
    return count


@pytest.mark.parametrize("group", [N, 6_000])  # one row group of 6 pieces; 4 of 2 pieces each
def test_the_pieces_of_a_large_row_group_are_read_once_per_epoch(files, tmp_path, group, rows_read):
    folder, frame = files
    frame.to_parquet(tmp_path / "groups.parquet", row_group_size=group)
    rows = rows_of(tmp_path, "groups.parquet")
    rows_read[0] = 0  # the scan's pass, done
    batches, taken = epochs(rows, seed=2, n_epochs=3)
    per = batches.per_epoch
    assert len(batches.blocks) == (N // group) * -(-group // BUFFER) and max(b - a for a, b in batches.blocks) <= BUFFER
    for e in range(3):
        assert sorted(ids(taken[e * per : (e + 1) * per])) == list(range(N))
    assert rows_read[0] <= 3 * N  # a piece is not read from its group's first row again and again
    order = [i for window in batches.windows for i in window]  # the last epoch's blocks, in reading order
    for unit in batches.units:  # a row group's pieces one after another, in file order
        at = order.index(unit[0])
        assert order[at : at + len(unit)] == unit
    assert len(batches.units) == N // group


def test_a_split_reads_the_row_groups_of_its_rows_only(files, rows_read):
    rows = rows_of(files[0], "rows.parquet")
    train, val = rows.split(0.3, torch.Generator().manual_seed(0))
    groups = set(range(N // GROUP))
    held = {g for g in groups if all(any(a <= r < b for a, b in val.ranges) for r in range(g * GROUP, (g + 1) * GROUP))}
    assert held  # some row groups are all validation rows (blocks of N / 32 = 750 rows: half a row group)
    rows_read[0] = 0
    assert sum(len(x) for x, _, _ in train.chunks()) == len(train)
    assert rows_read[0] == (len(groups) - len(held)) * GROUP  # the groups with training rows, each once


def test_a_full_batch_is_the_row_set_itself(files):
    rows = rows_of(files[0], "rows.parquet")
    batches = StreamBatches(rows, None, True, torch.Generator().manual_seed(0))
    assert batches.per_epoch == 1 and batches.take(0)[0] is rows and batches.blocks == []


def test_the_window_fits_the_memory_budget(files, monkeypatch):
    rows = rows_of(files[0], "rows.parquet")
    assert stream_batches.window_rows(rows) == stream_batches.BUFFER_ROWS
    monkeypatch.setenv("GRADFIT_MEMORY", "1000000")  # 1 MB: windows of 1e6 / (8 bytes x 4 columns x 8 copies) rows
    batches, taken = epochs(rows, n_epochs=1)
    assert batches.buffer_rows == 1_000_000 // (32 * 8)
    assert max(b - a for a, b in batches.blocks) <= batches.buffer_rows
    assert sorted(ids(taken)) == list(range(N))


# -- fits ------------------------------------------------------------------------------------------

ADAM = {"optimizer": "adam", "batch_size": 512, "lr": 0.02, "dtype": "float64", "x": "x", "y": "y"}


@pytest.mark.parametrize("name", ["rows.parquet", "rows.csv"])
def test_a_streamed_mini_batch_fit_is_the_same_for_the_same_seed(files, name, small_windows):
    path = files[0] / name
    a, b, c = (gradfit.fit("a*x + b", path, stream=True, epochs=2, seed=s, **ADAM) for s in (1, 1, 2))
    assert a.steps == b.steps == 2 * -(-N // 512) and a.stop_reason == "max_epochs"
    assert a.flat_params == b.flat_params and a.loss == b.loss
    assert a.flat_params != c.flat_params
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])


def test_adam_mini_batches_on_a_streamed_file_reach_the_least_squares_optimum(files, small_windows):
    # Other batches than in memory (blocks and windows, not one random order of all rows): not bit-equal to the
    # in-memory mini-batch fit, but the same optimum; the cosine schedule lets the batches' noise die out.
    folder, frame = files
    options = {**ADAM, "lr": 0.1, "stream": True, "epochs": 10, "schedule": "cosine"}
    fit = gradfit.fit("a*x + b", folder / "rows.parquet", seed=0, **options)
    design = np.column_stack([frame["x"], np.ones(N)])
    best = np.linalg.lstsq(design, frame["y"].to_numpy(), rcond=None)[0]
    # 1e-3 measured for seeds 0-2; 3e-3 is 1.5 standard errors of the estimates themselves (0.3 / sqrt(N)).
    np.testing.assert_allclose([fit.flat_params["a"], fit.flat_params["b"]], best, atol=3e-3)
    optimum = float(np.mean((design @ best - frame["y"].to_numpy()) ** 2))
    assert fit.loss == pytest.approx(optimum, rel=1e-4)


@pytest.mark.parametrize("name, stop", [("rows.parquet", 60), ("holes.csv", 60), ("rows.parquet", 9)])
def test_a_resumed_streamed_mini_batch_fit_equals_one_never_stopped(files, name, stop, small_windows, tmp_path):
    path = files[0] / name
    options = {**ADAM, "stream": True, "epochs": 2, "seed": 4, "drop_nan": name.startswith("holes")}
    whole = gradfit.fit("a*x + b", path, **options)
    stopped = fit_stopped_at(stop, tmp_path, "a*x + b", path, **options)  # mid-epoch (1 or 2), mid-window
    assert stopped.stop_reason == "interrupted" and stopped.steps == stop + 1
    resumed = gradfit.fit("a*x + b", path, resume=tmp_path, **options)
    assert_same_fit(resumed, whole)
    assert resumed.flat_params == whole.flat_params


def test_a_checkpoint_of_other_shuffle_windows_is_not_resumed(files, small_windows, tmp_path, monkeypatch):
    from gradfit.errors import ConfigError

    path = files[0] / "rows.parquet"
    options = {**ADAM, "stream": True, "epochs": 2, "seed": 4}
    fit_stopped_at(30, tmp_path, "a*x + b", path, **options)
    monkeypatch.setattr(stream_batches, "BUFFER_ROWS", 2 * BUFFER)  # as another memory budget would
    with pytest.raises(ConfigError, match="windows of 4000 rows over 16 blocks.*8000 rows"):
        gradfit.fit("a*x + b", path, resume=tmp_path, **options)


# -- the validation split ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rows.parquet", "rows.csv", "holes.csv"])
def test_a_validation_split_holds_out_whole_blocks(files, name):
    rows = rows_of(files[0], name, drop_nan=name.startswith("holes"))
    train, val = rows.split(0.2, torch.Generator().manual_seed(1))
    again = rows.split(0.2, torch.Generator().manual_seed(1))
    other = rows.split(0.2, torch.Generator().manual_seed(2))
    assert (train.ranges, val.ranges) == (again[0].ranges, again[1].ranges) and val.ranges != other[1].ranges
    seen = [ids([c]) for c in train.chunks(5_000)], [ids([c]) for c in val.chunks(5_000)]
    t, v = (sorted(i for part in parts for i in part) for parts in seen)
    assert not set(t) & set(v) and sorted(t + v) == sorted(ids(list(rows.chunks())))
    assert len(train) == len(t) and len(val) == len(v)
    assert abs(len(v) / len(rows) - 0.2) <= 0.5 / 32 + 1e-9  # within half a block of the fraction
    for part in (train, val):  # its own rows only: in file order, with the file's values
        assert ids(list(part.chunks(5_000))) == sorted(ids(list(part.chunks(5_000))))


def test_early_stopping_on_a_streamed_split_keeps_the_best_parameters(files, small_windows):
    folder, frame = files
    options = {**ADAM, "lr": 0.05, "stream": True, "epochs": 40, "seed": 3, "val_split": 0.25, "patience": 2}
    fit = gradfit.fit("a*x + b", folder / "rows.parquet", min_delta=1e-4, **options)
    assert fit.stop_reason == "early_stopped" and fit.steps < 40 * fit.steps / fit.epochs
    assert fit.data["n_train"] + fit.data["n_val"] == N
    steps, losses = fit.history["step"], fit.history["val_loss"]
    val_losses = {int(k): v for k, v in zip(steps, losses) if np.isfinite(v) and k < fit.steps}
    assert fit.best_step == min(val_losses, key=val_losses.get)
    # The oracle: the held-out rows' mean squared error at the kept parameters, from the file read whole.
    generator = torch.Generator().manual_seed(3)
    _, val = rows_of(folder, "rows.parquet").split(0.25, generator)
    held = np.concatenate([np.arange(a, b) for a, b in val.ranges])
    a, b = fit.flat_params["a"], fit.flat_params["b"]
    mse = float(np.mean((a * frame["x"].to_numpy()[held] + b - frame["y"].to_numpy()[held]) ** 2))
    assert fit.val_loss == pytest.approx(mse, rel=1e-12)
    assert fit.val_loss == pytest.approx(val_losses[fit.best_step], rel=1e-12)


# -- ten million rows ---------------------------------------------------------------------------------------

#: Peak resident memory of a mini-batch fit over 10^7 rows, above the process's after a warm-up fit (the modules a
#: fit imports, pyarrow's and torch's first use): 83-122 MB measured (the scan's pass, then windows of 10^6 rows:
#: one read while the one before is let go, put in order); the same fit on the file read whole peaked at 1016 MB.
#: The bound is what the used columns alone (x and y, float64) would take whole.
MINI_PEAK_BOUND = 160e6

MINI_MEASURE = """
import os, sys, tempfile, warnings
import numpy as np, pandas as pd, gradfit
warnings.simplefilter("ignore")

options = dict(x="x", y="y", stream=True, optimizer="adam", lr=0.01, seed=11, dtype="float64", batch_size=4096)
small = os.path.join(tempfile.mkdtemp(), "small.parquet")
pd.DataFrame({"x": np.linspace(0, 1, 5000), "y": np.linspace(1, 3, 5000)}).to_parquet(small, row_group_size=1000)
gradfit.fit("a*x + b", small, steps=30, **options)  # the warm-up
reset_peak()
fits = [gradfit.fit("a*x + b", sys.argv[1], steps=400, **options) for _ in range(2)]
print_measured(
    params=[f.flat_params for f in fits], losses=[f.loss for f in fits],
    steps=fits[0].steps, epochs=fits[0].epochs, n=fits[0].data["n"],
)
"""


@pytest.mark.slow
def test_adam_mini_batches_over_ten_million_rows_hold_windows_not_the_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    needs_proc()
    n = 10**7
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    table = pa.table({"x": x, "y": 2.0 * x + 1.0 + 0.1 * rng.normal(size=n), "unused": rng.normal(size=n)})
    path = tmp_path / "big.parquet"
    pq.write_table(table, path, row_group_size=10**6)  # windows of one row group: 400 batches of 4096 take two
    del x, table
    got = run_measured(MINI_MEASURE, path)
    assert got["n"] == n and got["steps"] == 400 and got["epochs"] == pytest.approx(400 / 2442)
    assert got["params"][0] == got["params"][1] and got["losses"][0] == got["losses"][1]  # the same batches
    assert got["params"][0] == pytest.approx({"a": 2.0, "b": 1.0}, abs=0.01)  # adam's lr, near the optimum
    assert got["peak"] < MINI_PEAK_BOUND, f"peak resident memory grew {got['peak'] / 1e6:.0f} MB"

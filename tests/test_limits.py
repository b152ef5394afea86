"""Memory limits: the history and the pictures hold a bounded amount whatever the length or size of a fit.

The oracles are the documented caps (docs/limits.md) and the decimation invariants: kept rows and
snapshots are evenly spaced, step 0 and the final state are always kept, and no more than the cap
is ever held, not only at the end.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

import gradfit  # noqa: E402
from gradfit.plots import display  # noqa: E402
from gradfit.plots.animate import FitAnimation  # noqa: E402
from gradfit.plots.fit import FitDisplay  # noqa: E402
from gradfit.train.config import FitConfig  # noqa: E402
from gradfit.train.history import (  # noqa: E402
    MAX_ROWS,
    MAX_SNAPSHOT_VALUES,
    MAX_SNAPSHOTS,
    HistoryRecorder,
    snapshot_cap,
)

N_PARAMS = 1000


def _record(recorder: HistoryRecorder, steps: int, vector, watch: bool = False) -> tuple[int, int]:
    """Drive ``recorder`` as the training loop does for ``steps`` steps; the most rows/snapshots ever held."""
    most_rows = most_snaps = 0
    for s in range(steps):
        recorder.add_row(s, s / 10, 1.0 / (s + 1), np.nan, 0.1, 2.0, s * 1e-3)
        if recorder.wants_snapshot(s):
            recorder.add_snapshot(s, vector)
            if watch:
                most_rows, most_snaps = max(most_rows, len(recorder)), max(most_snaps, len(recorder.snaps))
    recorder.add_final(steps, steps / 10, 0.0, np.nan, steps * 1e-3, vector)
    return most_rows, most_snaps


def _evenly_spaced_with_ends(steps: np.ndarray, last: int) -> None:
    assert steps[0] == 0 and steps[-1] == last
    if len(steps) == 2:
        return
    interior = np.diff(steps[:-1])
    assert len(set(interior.tolist())) == 1 and interior[0] > 0  # one interval between kept steps
    assert 0 < last - steps[-2] <= interior[0]  # the final state comes within one interval of the last kept


def test_the_caps_are_the_documented_values():
    assert (MAX_ROWS, MAX_SNAPSHOTS, MAX_SNAPSHOT_VALUES) == (1_000_000, 2_000, 32_000_000)
    assert (display.MAX_PLOT_ROWS, display.MAX_ANIMATION_ROWS) == (20_000, 2_000)
    assert FitConfig().max_snapshots == MAX_SNAPSHOTS
    assert HistoryRecorder(["a"]).max_rows == MAX_ROWS


def test_a_million_steps_of_a_thousand_parameters_stay_within_the_caps():
    vector = torch.arange(N_PARAMS, dtype=torch.float64)
    recorder = HistoryRecorder([f"p{i}" for i in range(N_PARAMS)])
    _record(recorder, 1_000_000, vector)
    h = recorder.freeze()
    # 1,000,000 rows plus the final one exceed MAX_ROWS: the final row forces one thinning.
    assert len(h) <= MAX_ROWS and len(h) == 500_001
    _evenly_spaced_with_ends(h.step, 1_000_000)
    assert len(h.snapshot_steps) <= MAX_SNAPSHOTS
    _evenly_spaced_with_ends(h.snapshot_steps, 1_000_000)
    assert h.snapshots.shape == (len(h.snapshot_steps), N_PARAMS) and h.snapshots.dtype == np.float64
    np.testing.assert_array_equal(h.snapshots[-1], vector.numpy())
    # Every kept row holds what was recorded at its step.
    np.testing.assert_array_equal(h.loss[:-1], 1.0 / (h.step[:-1] + 1))
    np.testing.assert_array_equal(h["time"][:-1], h.step[:-1] * 1e-3)


@pytest.mark.parametrize("max_rows,max_snapshots,steps", [(1000, 100, 1_000_000), (7, 3, 10_000), (2, 2, 999)])
def test_decimation_never_holds_more_than_the_cap(max_rows, max_snapshots, steps):
    recorder = HistoryRecorder(["a", "b"], max_rows=max_rows, max_snapshots=max_snapshots)
    most_rows, most_snaps = _record(recorder, steps, np.array([1.0, 2.0]), watch=True)
    h = recorder.freeze()
    assert most_rows <= max_rows and most_snaps <= max_snapshots
    assert len(h) <= max_rows and len(h.snapshot_steps) <= max_snapshots
    assert len(h) >= max_rows // 2 and len(h.snapshot_steps) >= max_snapshots // 2  # thinning halves, no more
    _evenly_spaced_with_ends(h.step, steps)
    _evenly_spaced_with_ends(h.snapshot_steps, steps)


def test_many_parameters_keep_fewer_snapshots_within_the_value_budget():
    assert snapshot_cap(N_PARAMS) == MAX_SNAPSHOTS
    assert snapshot_cap(100_000) == MAX_SNAPSHOT_VALUES // 100_000 == 320
    assert snapshot_cap(10**9) == 2  # never fewer than the start and the end
    recorder = HistoryRecorder([f"p{i}" for i in range(100_000)])
    _record(recorder, 2_000, np.zeros(100_000))
    h = recorder.freeze()
    assert h.snapshots.size <= MAX_SNAPSHOT_VALUES and len(h.snapshot_steps) <= 320
    _evenly_spaced_with_ends(h.snapshot_steps, 2_000)


def test_a_real_fit_keeps_start_and_end_and_obeys_max_snapshots():
    r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=601, max_snapshots=20)
    assert 10 <= len(r.history.snapshot_steps) <= 20
    _evenly_spaced_with_ends(r.history.snapshot_steps, 601)
    assert len(r.history) == 602


# -- pictures --------------------------------------------------------------------------------------

BIG = 1_000_000


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, BIG)
    frame = pd.DataFrame({"x": x, "y": 2 * x + 1 + rng.normal(0, 0.1, BIG)})
    return gradfit.fit("linear", frame, y="y", lr=0.5, steps=3), frame


def _scatter_offsets(ax) -> np.ndarray:
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 1
    return np.asarray(points[0].get_offsets())


def test_plot_rows_is_a_fixed_sorted_subset_of_the_cap():
    assert display.plot_rows(100, cap=100) is None
    rows = display.plot_rows(10**8, cap=1000)
    assert len(rows) == len(np.unique(rows)) == 1000 and np.all(np.diff(rows) > 0)
    assert rows.min() >= 0 and rows.max() < 10**8
    np.testing.assert_array_equal(rows, display.plot_rows(10**8, cap=1000))  # the same picture every time


def test_fit_display_of_a_million_rows_draws_max_plot_rows_points(big):
    result, frame = big
    fig = FitDisplay(result, frame).figure()
    offsets = _scatter_offsets(fig.axes[0])
    assert len(offsets) == display.MAX_PLOT_ROWS
    # The points drawn are rows of the data, at their own coordinates.
    rows = display.plot_rows(BIG, display.MAX_PLOT_ROWS)
    np.testing.assert_allclose(offsets, frame[["x", "y"]].to_numpy()[rows], rtol=1e-6)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "data (20,000 of 1,000,000 rows)" in labels


def test_the_caps_can_be_changed(big, monkeypatch):
    result, frame = big
    monkeypatch.setattr(display, "MAX_PLOT_ROWS", 500)
    monkeypatch.setattr(display, "MAX_ANIMATION_ROWS", 300)
    assert len(_scatter_offsets(FitDisplay(result, frame).figure().axes[0])) == 500
    fig, _ = FitAnimation(result, frame, max_frames=2).make_figure()
    assert len(_scatter_offsets(fig.axes[0])) == 300


def test_fit_animation_of_a_million_rows_draws_max_animation_rows_points(big):
    result, frame = big
    anim = FitAnimation(result, frame, max_frames=3)
    fig, update = anim.make_figure()
    update(2)
    offsets = _scatter_offsets(fig.axes[0])
    assert len(offsets) == display.MAX_ANIMATION_ROWS < display.MAX_PLOT_ROWS
    rows = display.plot_rows(BIG, display.MAX_ANIMATION_ROWS)
    np.testing.assert_allclose(offsets, frame[["x", "y"]].to_numpy()[rows], rtol=1e-6)
    assert anim.data_x.shape == anim.data_y.shape == (display.MAX_ANIMATION_ROWS,)


def test_recorder_rows_and_table_agree_and_set_last_val_fills_the_last_row():
    recorder = HistoryRecorder(["a"], max_rows=4)
    for s in range(5):
        recorder.add_row(s, s / 2, 10.0 - s, np.nan, 0.1, 1.0, 0.5 * s)
    recorder.set_last_val(3.25)
    # 5 rows exceed 4: the odd steps went, the rest stayed as recorded.
    assert recorder.rows[-1][:4] == (4.0, 2.0, 6.0, 3.25)
    assert [r[0] for r in recorder.rows] == [0.0, 2.0, 4.0]
    np.testing.assert_array_equal(recorder.table(), np.array(recorder.rows))
    assert recorder.table().shape == (3, 7)

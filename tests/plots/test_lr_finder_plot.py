"""LRFinderDisplay: the drawn lines are the sweep's, the vertical lines sit at the suggestions."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image

from gradfit.errors import ConfigError
from gradfit.experiments.lr_finder import LRFinderResult, find_lr, smooth
from gradfit.plots import style
from gradfit.plots.lr_finder import LRFinderDisplay


@pytest.fixture(scope="module")
def full_batch():
    return find_lr("linear", "builtin:linear", y="y")


@pytest.fixture(scope="module")
def mini_batch():
    return find_lr(
        "linear", "builtin:linear", y="y", batch_size=10, optimizer="adam", lr_min=1e-5, lr_max=1.0, steps=60
    )


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_full_batch_one_curve_with_the_suggestions_and_the_stability_limit(full_batch):
    ax = LRFinderDisplay(full_batch).figure().axes[0]
    lines = _lines(ax)
    ok = np.isfinite(full_batch.smoothed)
    np.testing.assert_array_equal(lines["loss"].get_xdata(), full_batch.lrs[ok])
    np.testing.assert_array_equal(lines["loss"].get_ydata(), full_batch.smoothed[ok])
    assert not any(label.startswith("smoothed") for label in lines)  # smoothing 1: the two would coincide
    expected = {
        "suggestion": full_batch.suggestion,
        "min/10": full_batch.suggestion_min10,
        "stability limit": full_batch.stability_limit.limit,
    }
    vertical = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
    assert set(vertical) == set(expected)
    for gid, value in expected.items():
        assert list(vertical[gid].get_xdata()) == [value, value]
        assert style.fmt(value) in vertical[gid].get_label()
    assert ax.get_xscale() == "log"


def test_y_axis_ignores_the_blow_up():
    lrs = np.logspace(-6, 1, 50)
    losses = np.concatenate([np.linspace(10.0, 4.0, 45), [5.0, 50.0, 1e4, 1e8, np.inf]])
    sweep = LRFinderResult(
        lrs=lrs,
        losses=losses,
        smoothed=smooth(losses, 1.0),
        suggestion=1e-3,
        min_lr=0.1,
        suggestion_min10=0.01,
        stopped_early=True,
        stability_limit=None,
        steps_run=50,
    )
    display = LRFinderDisplay(sweep)
    ax = display.figure().axes[0]
    assert ax.get_ylim() == pytest.approx((4.0 - 0.05 * 11.0, 15.0 + 0.05 * 11.0))  # [min, 1.5 x first], 5% margins
    assert not display.log_y and ax.get_yscale() == "linear"
    np.testing.assert_array_equal(_lines(ax)["loss"].get_ydata(), losses[:-1])  # drawn, just out of frame


def test_log_axis_when_the_loss_falls_decades(full_batch):
    display = LRFinderDisplay(full_batch)
    ax = display.figure().axes[0]
    low, high = ax.get_ylim()
    finite = full_batch.smoothed[np.isfinite(full_batch.smoothed)]
    assert high <= 1.5 * full_batch.smoothed[0] * 1.3 and low <= finite.min()
    assert display.log_y and ax.get_yscale() == "log"  # 9 -> 0.08: more than a decade


def test_mini_batch_raw_faint_smoothed_strong_no_limit(mini_batch):
    ax = LRFinderDisplay(mini_batch).figure().axes[0]
    lines = _lines(ax)
    raw, smooth = lines["loss"], lines["smoothed loss (weight 0.05)"]
    np.testing.assert_array_equal(raw.get_ydata(), mini_batch.losses)
    np.testing.assert_array_equal(smooth.get_ydata(), mini_batch.smoothed)
    assert raw.get_alpha() < 1 and smooth.get_linewidth() > raw.get_linewidth()
    assert "stability limit" not in {line.get_gid() for line in ax.get_lines()}


def test_png_decodes_at_the_expected_size(full_batch, tmp_path):
    path = LRFinderDisplay(full_batch).save(tmp_path / "lr.png", dpi=50)
    with Image.open(path) as img:
        assert img.size == (round(6.4 * 50), round(4.4 * 50))


def test_refuses_other_objects():
    with pytest.raises(ConfigError, match="needs an LRFinderResult"):
        LRFinderDisplay({"lrs": [1.0]})

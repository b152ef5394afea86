"""Curves drawn truthfully: fine enough for the model's structure, framed by the data and the final fit.

The oracle is the model itself, evaluated in NumPy on a grid far finer than any picture: the drawn
polyline, read back from the artist, must stay within a small fraction of the frame of it.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import gradfit
from gradfit.plots.animate import FitAnimation
from gradfit.plots.curve import curve_grid, leaves, y_limits
from gradfit.plots.fit import FitDisplay
from gradfit.plots.grid import GridDisplay

DAILY = "a + b*hour + c*sin(2*pi*hour/24) + d*cos(2*pi*hour/24)"


def daily_cycle(days: int) -> pd.DataFrame:
    """Hourly temperatures with a 24 h cycle (amplitude 5) on a slow trend, as a weather station logs them."""
    rng = np.random.default_rng(0)
    hour = np.arange(24.0 * days)
    temp = 15 + 0.001 * hour + 5 * np.sin(2 * np.pi * hour / 24 + 0.5) + rng.normal(0, 0.7, hour.size)
    return pd.DataFrame({"hour": hour, "temp": temp})


def exact(result, t):
    p = result.flat_params
    return p["a"] + p["b"] * t + p["c"] * np.sin(2 * np.pi * t / 24) + p["d"] * np.cos(2 * np.pi * t / 24)


@pytest.fixture(scope="module")
def year():
    frame = daily_cycle(365)
    return gradfit.fit(DAILY, frame, y="temp", optimizer="lm", steps=20), frame


def drawn_fit(ax):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("fit (")]
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def test_a_year_of_hourly_data_draws_every_daily_cycle_without_aliasing(year):
    result, frame = year
    ax = FitDisplay(result, frame).figure().axes[0]
    x, y = drawn_fit(ax)
    fine = np.linspace(0, frame.hour.max(), 400_000)  # 46 points an hour
    truth = exact(result, fine)
    # Between its vertices the drawn line is straight: it must not miss the model by more than 1% of the cycle.
    miss = np.abs(np.interp(fine, x, y) - truth).max()
    amplitude = np.hypot(result.flat_params["c"], result.flat_params["d"])
    assert miss < 0.01 * amplitude, miss
    # One crest per day: 400 even points (the old grid) would alias 365 cycles into a few slow false waves.
    crests = np.sum((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]))
    assert abs(crests - 365) <= 1
    assert np.isin(frame.hour.to_numpy(), x).all()  # the curve passes through every data x


def test_the_old_even_grid_would_have_failed():
    """The check above has teeth: 400 even points over a year of daily cycles miss by most of the amplitude."""
    t = np.linspace(0, 24 * 365 - 1, 400)
    fine = np.linspace(0, 24 * 365 - 1, 400_000)
    miss = np.abs(np.interp(fine, t, np.sin(2 * np.pi * t / 24)) - np.sin(2 * np.pi * fine / 24)).max()
    assert miss > 0.5


def test_grid_refines_between_sparse_data_until_segments_follow_the_curve():
    x = np.arange(0.0, 300.0, 5.0)  # data every 5 h: a 24 h cycle is not resolved by the data's x alone
    grid = curve_grid(x, lambda t: np.sin(2 * np.pi * t / 24), (-1.1, 1.1))
    assert np.isin(x, grid).all() and np.all(np.diff(grid) > 0)
    fine = np.linspace(x[0], x[-1], 200_000)
    miss = np.abs(np.interp(fine, grid, np.sin(2 * np.pi * grid / 24)) - np.sin(2 * np.pi * fine / 24)).max()
    assert miss < 2.2e-3 * 1.1  # the tolerance, 1e-3 of the frame's height (2.2), plus the curvature between checks
    per_cycle = np.histogram(grid, bins=np.arange(0, 301, 24))[0][:-1]
    assert per_cycle.min() >= 20


def test_grid_respects_the_point_budget_and_straight_lines_stay_coarse():
    x = np.linspace(0, 1, 50)
    straight = curve_grid(x, lambda t: 3 * t + 1, (0, 4), base_points=100)
    assert len(straight) == len(np.union1d(x, np.linspace(0, 1, 100)))
    dense = curve_grid(np.arange(100_000.0), lambda t: np.sin(t), (-1, 1), max_points=5_000)
    assert len(dense) <= 5_000 and dense[0] == 0 and dense[-1] == 99_999
    assert len(curve_grid(np.array([2.0, 2.0]), lambda t: t, (0, 3))) == 1
    assert len(curve_grid(np.array([np.nan]), lambda t: t, (0, 3))) == 0


def test_y_limits_and_leaves():
    assert y_limits(np.array([0.0, 10.0]), None) == pytest.approx((-0.5, 10.5))
    lo, hi = y_limits(np.array([1.0, np.inf, 2.0]), np.array([np.nan, 3.0]))
    assert lo < 1.0 and 3.0 < hi < 3.2
    assert leaves(np.array([0.0, 500.0]), (0.0, 10.0)) and not leaves(np.array([1.0, np.nan]), (0.0, 10.0))


# -- the y-range ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_weeks():
    frame = daily_cycle(21)
    # From the default start (every parameter 1): the starting line climbs to ~500 over data between 8 and 25.
    return gradfit.fit(DAILY, frame, y="temp", optimizer="lm", steps=20), frame


def test_y_range_holds_the_data_and_the_final_curve_not_a_far_off_start(three_weeks):
    result, frame = three_weeks
    display = FitDisplay(result, frame, show_start=True)
    ax = display.figure().axes[0]
    lo, hi = ax.get_ylim()
    _, y = drawn_fit(ax)
    (start,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("start")]
    assert lo <= frame.temp.min() and frame.temp.max() <= hi
    assert lo <= y.min() and y.max() <= hi
    assert np.max(start.get_ydata()) > 10 * hi  # the start is drawn, and leaves the frame...
    assert start.get_label() == "start (iteration 0, leaves the frame)"  # ...which the legend says
    assert hi - lo < 2 * (frame.temp.max() - frame.temp.min())


def test_grid_and_animation_share_that_range(three_weeks):
    result, frame = three_weeks
    grid = GridDisplay(result, frame, k=2)
    fig = grid.figure()
    lo, hi = grid.ylim
    assert lo <= frame.temp.min() and frame.temp.max() <= hi < 30
    assert all(ax.get_ylim() == (lo, hi) for ax in fig.axes)
    assert "(fit leaves the frame" in fig.axes[0].get_title() and "leaves" not in fig.axes[1].get_title()
    anim = FitAnimation(result, frame)
    ax = anim.make_figure(dpi=40)[0].axes[0]
    lo, hi = ax.get_ylim()
    assert lo <= frame.temp.min() and frame.temp.max() <= hi < 30
    assert lo <= anim.curves[-1].min() and anim.curves[-1].max() <= hi
    # The animation's curve, too, is fine enough for the cycle.
    fine = np.linspace(0, frame.hour.max(), 100_000)
    miss = np.abs(np.interp(fine, anim.grid_x, anim.curves[-1]) - exact(result, fine)).max()
    assert miss < 0.02 * np.hypot(result.flat_params["c"], result.flat_params["d"])

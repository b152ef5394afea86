"""LandscapeDisplay: the drawn path is the history, the contour levels are log-spaced."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from PIL import Image

import gradfit
from gradfit.analysis.landscape import compute_landscape
from gradfit.errors import ConfigError
from gradfit.plots.landscape import LandscapeDisplay, contour_levels, log_levels, plot_landscape


@pytest.fixture(scope="module")
def result():
    return gradfit.fit("linear", "builtin:linear", y="y", init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=40)


@pytest.fixture(scope="module")
def land(result):
    return compute_landscape(result, n=31)


def drawn(land, **options):
    ax = Figure().add_subplot()
    LandscapeDisplay(land, **options).plot(ax)
    return ax


def line(ax, prefix):
    hits = [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]
    assert len(hits) == 1, [ln.get_label() for ln in ax.get_lines()]
    return hits[0]


def test_path_start_and_end_are_the_snapshots(result, land):
    ax = drawn(land)
    snaps = result.history.snapshots
    path = line(ax, "path")
    np.testing.assert_array_equal(path.get_xdata(), snaps[:, 0])
    np.testing.assert_array_equal(path.get_ydata(), snaps[:, 1])
    start, end = line(ax, "start"), line(ax, "end")
    assert (start.get_xdata()[0], start.get_ydata()[0]) == tuple(snaps[0, :2])
    assert (end.get_xdata()[0], end.get_ydata()[0]) == tuple(snaps[-1, :2])
    assert ax.get_xlabel() == "a[0]" and ax.get_ylabel() == "a[1]"
    ma, mb, _ = land.minimum()
    mark = line(ax, "grid minimum")
    assert (mark.get_xdata()[0], mark.get_ydata()[0]) == (ma, mb)


def test_contour_levels_are_log_spaced_between_min_and_max(land):
    ax = drawn(land, levels=12)
    filled = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    assert len(filled) == 1
    levels = filled[0].levels
    assert len(levels) == 12
    np.testing.assert_allclose(levels[1:] / levels[:-1], levels[1] / levels[0], rtol=1e-9)
    assert levels[0] == pytest.approx(land.loss.min()) and levels[-1] == pytest.approx(land.loss.max())
    colorbar_label = ax.figure.axes[1].get_ylabel()
    assert "mse" in colorbar_label


def test_levels_with_a_minimum_at_or_below_zero_are_offset():
    loss = np.array([[-1.0, 0.0], [2.0, 9.0]])
    levels = log_levels(loss, 8)
    assert levels[0] == pytest.approx(-1.0) and levels[-1] == pytest.approx(9.0)
    # Geometric above some offset c below the minimum: then the gaps themselves grow geometrically.
    gaps = np.diff(levels)
    assert np.all(gaps > 0)
    np.testing.assert_allclose(gaps[1:] / gaps[:-1], gaps[1] / gaps[0], rtol=1e-9)
    assert gaps[1] / gaps[0] > 1.5
    with pytest.raises(ConfigError, match="The 'levels' parameter must be a whole number >= 2. Got 1 instead."):
        log_levels(loss, 1)


def test_without_path_nothing_but_contours_and_minimum(land):
    ax = drawn(land, show_path=False)
    assert [ln.get_label() for ln in ax.get_lines()] == [f"grid minimum ({land.minimum()[2]:.3g})"]


def test_three_parameter_title_names_the_held_value():
    r = gradfit.fit(
        "a*t**2 + b*t + c", "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-5, steps=10
    )
    ax = drawn(compute_landscape(r, params=("a", "b"), n=21))
    assert "c = " in ax.get_title() and "held" in ax.get_title()
    assert ax.get_xlabel() == "a" and ax.get_ylabel() == "b"


def test_png_decodes_at_figsize_times_dpi(result, land, tmp_path):
    path = LandscapeDisplay(land).save(tmp_path / "landscape.png", dpi=50)
    with Image.open(path) as img:
        assert img.size == (320, 250)
    display = plot_landscape(result, n=11)
    assert display.landscape.loss.shape == (11, 11)
    with Image.open(display.save(tmp_path / "l2.png", dpi=40)) as img:
        assert img.size == (256, 200)


# -- levels that stay readable over many decades ---------------------------------------------------


@pytest.fixture(scope="module")
def exponential():
    """mpg against horsepower as a decaying exponential (mtcars-like): across the grid the loss spans ~29 decades."""
    import pandas as pd

    rng = np.random.default_rng(0)
    hp = rng.uniform(50, 335, 32)
    df = pd.DataFrame({"hp": hp, "mpg": 39 * np.exp(-0.0137 * hp) + 12.8 + rng.normal(0, 2, 32)})
    r = gradfit.fit("a*exp(b*hp) + c", df, y="mpg", optimizer="lm", init={"a": 30, "b": -0.005, "c": 10}, steps=50)
    return compute_landscape(r, df, params=("a", "b"), n=61)


def test_levels_split_decades_and_area_when_the_loss_spans_many_decades(exponential):
    loss = exponential.loss[np.isfinite(exponential.loss)]
    assert np.log10(loss.max() / loss.min()) > 20
    # Log-spaced levels leave half the map, the half the path runs in, in one band: one colour.
    old = np.histogram(loss, bins=log_levels(exponential.loss, 20))[0] / loss.size
    assert old.max() > 0.5
    levels, kind = contour_levels(exponential.loss, 20)
    assert kind == "log+area" and len(levels) == 20 and np.all(np.diff(levels) > 0)
    assert levels[0] == loss.min() and levels[-1] == loss.max()
    area = np.histogram(loss, bins=levels)[0] / loss.size
    decades = np.diff(np.log(levels)) / np.log(loss.max() / loss.min())
    assert area.max() <= 2 / 19 + 2 / loss.size  # no band covers more than its share of the map...
    assert decades.max() <= 2 / 19 + 1e-9  # ...nor of the decades, so the valley keeps its contours too


@pytest.mark.parametrize("zeros", [500, 5000])
def test_levels_stay_increasing_when_the_loss_is_0_over_much_of_the_map(zeros):
    """A separable classification's cross-entropy is 0 over half the map and 1e10 at a corner: the levels by area
    merged in rounding and matplotlib refused them (an internal error drawing gradfit sweep's race.png). Found by
    tests/test_cli_corpus_batched.py."""
    loss = np.r_[np.zeros(zeros), np.linspace(1e-9, 1.0, 100), 1.6e10].reshape(1, -1)
    levels, kind = contour_levels(loss, 20)
    assert (np.diff(levels) > 0).all() and levels[0] == 0.0 and levels[-1] == 1.6e10
    assert (kind, len(levels)) == ("log", 20)
    fig = Figure()
    ax = fig.add_subplot()
    filled = ax.contourf(np.tile(np.arange(loss.size), (2, 1)), np.repeat([[0], [1]], loss.size, 1),
                         np.repeat(loss, 2, 0), levels=levels)  # fmt: skip
    assert len(filled.levels) == 20


def test_a_level_merged_with_the_minimum_is_lifted_and_drawn():
    """A plain at the minimum: the second level rounded to the first (the docstring's example drew no contours)."""
    a, b = np.meshgrid(np.linspace(0, 1, 50), np.linspace(-1, 1, 50))
    loss = 1 + np.exp(60 * b) * a
    levels, kind = contour_levels(loss, 12)
    assert kind == "log+area" and (np.diff(levels) > 0).all() and levels[1] == np.nextafter(1.0, 2.0)
    filled = Figure().add_subplot().contourf(a, b, loss.astype(np.float32).astype(np.float64), levels=levels)
    assert len(filled.levels) == 12


def test_the_drawn_contours_and_colour_bar_say_which_levels(exponential, land):
    ax = drawn(exponential)
    (filled,) = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    np.testing.assert_allclose(filled.levels, contour_levels(exponential.loss, 20)[0])
    assert ax.figure.axes[1].get_ylabel() == "mse (levels by decade and area)"
    ticks = [t.get_text() for t in ax.figure.axes[1].get_yticklabels()]
    assert len(set(ticks)) == len(ticks)  # close levels get more digits, never the same label twice
    # A bowl spanning two decades keeps plain log-spaced levels.
    assert contour_levels(land.loss, 20)[1] == "log"
    assert drawn(land).figure.axes[1].get_ylabel() == "mse (log-spaced levels)"


def test_an_lm_path_is_counted_in_iterations(exponential):
    path = line(drawn(exponential), "path")
    assert path.get_label() == f"path ({int(exponential.path_steps[-1])} iterations)"

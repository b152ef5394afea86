"""GridDisplay: k panels at the chosen steps, each the model at that snapshot, one shared y-range."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image

import gradfit
from gradfit.errors import ConfigError
from gradfit.plots.grid import GridDisplay, choose_steps, plot_grid


@pytest.fixture(scope="module")
def roller():
    return gradfit.fit(
        "a*t**2 + b*t + c", "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-5, steps=10
    )


def curve_of(ax):
    (line,) = [l for l in ax.get_lines() if l.get_label().startswith("fit")]
    return np.asarray(line.get_xdata()), np.asarray(line.get_ydata())


def test_default_row_of_four_from_start_to_end(roller, tmp_path):
    display = plot_grid(roller)
    assert display.steps == [0, 3, 7, 10]
    fig = display.figure()
    assert len(fig.axes) == 4
    assert [ax.get_title().split(",")[0] for ax in fig.axes] == ["step 0", "step 3", "step 7", "step 10"]
    assert fig.axes[0].get_title().startswith(f"step 0, loss {roller.history.loss[0]:.3g}")
    limits = {ax.get_ylim() for ax in fig.axes}
    assert len(limits) == 1
    lo, hi = limits.pop()
    data = gradfit.datasets.rollercoaster()
    for ax, step in zip(fig.axes, display.steps):
        x, y = curve_of(ax)
        p = roller.history.params_at(step)
        np.testing.assert_allclose(y, p["a"] * x**2 + p["b"] * x + p["c"], rtol=1e-5, atol=1e-4)
        # The shared range holds the data and the last panel's curve; a curve that leaves it says so.
        leaves = y.min() < lo or y.max() > hi
        assert leaves == ("leaves the frame" in ax.get_title()), (step, ax.get_title())
    assert lo <= data["speed"].min() and data["speed"].max() <= hi
    assert lo <= y.min() and y.max() <= hi
    path = display.save(tmp_path / "grid.png", dpi=40)
    with Image.open(path) as img:
        assert img.size == (round(display.figsize[0] * 40), round(display.figsize[1] * 40))


def test_chosen_steps_and_k(roller):
    assert GridDisplay(roller, steps=[2, 5]).steps == [2, 5]
    assert len(GridDisplay(roller, k=3).figure().axes) == 3
    assert choose_steps(np.arange(11), 4) == [0, 3, 7, 10]
    assert choose_steps(np.arange(3), 5) == [0, 1, 2]
    with pytest.raises(ConfigError, match="'k' parameter must be an integer >= 1. Got 0 instead"):
        GridDisplay(roller, k=0)
    with pytest.raises(ConfigError, match="'step' parameter"):
        GridDisplay(roller, steps=[0, 99])

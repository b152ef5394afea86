"""Small layout helpers: where a legend goes, cutting a title to fit, laying a figure out once."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gradfit.plots.animation_panels import shorten
from gradfit.plots.backdrop import render, settle
from gradfit.plots.display import quiet_corner


def test_quiet_corner_is_the_emptiest_corner_on_linear_and_log_axes():
    ax = Figure().add_subplot()
    x = np.linspace(0, 1, 200)
    ax.set(xlim=(0, 1), ylim=(0, 1))
    assert quiet_corner(ax, [(x, x)]) in ("upper left", "lower right")  # the diagonal crosses the other two
    assert quiet_corner(ax, [(x, 1 - x), (x, np.full_like(x, 0.1))]) == "upper right"
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1e3)
    # Near 1e2 on a log axis from 1e-3 to 1e3 is high up: the lower corners are free, not the upper ones.
    assert quiet_corner(ax, [(x, np.full_like(x, 1e2))]).startswith("lower")


def test_shorten_cuts_each_line_to_the_width_with_an_ellipsis():
    fig = Figure(figsize=(4, 2), dpi=100)
    renderer = FigureCanvasAgg(fig).get_renderer()
    text = fig.text(0, 0.5, "short\n" + "a very long line of text that cannot fit in one hundred pixels")
    assert shorten(text, 100, renderer)
    first, second = text.get_text().split("\n")
    assert first == "short" and second.endswith("…") and second.startswith("a very")
    text.set_text(second)
    assert text.get_window_extent(renderer).width <= 100
    assert not shorten(text, 100, renderer)


def test_settle_lays_out_once_and_the_picture_is_the_same():
    def make():
        fig = Figure(figsize=(4, 3), dpi=50, layout="constrained")
        ax = fig.add_subplot()
        ax.plot([0, 1e5], [0, 1])
        ax.set(xlabel="a long x label", ylabel="y", title="title")
        return fig

    settled = settle(make())
    assert settled.get_layout_engine() is None
    assert np.array_equal(render(settled), render(make()))

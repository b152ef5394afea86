"""ParamsDisplay: each panel is a parameter's snapshots; the dashed line is the lstsq optimum."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image

import gradfit
from gradfit.errors import ConfigError
from gradfit.plots.params import MAX_PANELS, ParamsDisplay, plot_params


@pytest.fixture(scope="module")
def linear():
    return gradfit.fit("linear", "builtin:linear", y="y", init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=40)


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_panels_are_the_snapshots_and_the_optimum_is_lstsq(linear, tmp_path):
    display = plot_params(linear)
    axes = visible_axes(display.figure())
    assert [ax.get_title() for ax in axes] == ["a[0]", "a[1]"]
    data = gradfit.datasets.linear()
    slope, intercept = np.polyfit(data["x"].to_numpy(np.float64), data["y"].to_numpy(np.float64), 1)
    for i, (ax, expected) in enumerate(zip(axes, (slope, intercept))):
        path, optimum = ax.get_lines()
        np.testing.assert_array_equal(path.get_xdata(), linear.history.snapshot_steps)
        np.testing.assert_array_equal(path.get_ydata(), linear.history.snapshots[:, i])
        assert optimum.get_linestyle() == "--"
        np.testing.assert_allclose(optimum.get_ydata(), [expected, expected], rtol=1e-6)
    path = display.save(tmp_path / "params.png", dpi=50)
    with Image.open(path) as img:
        assert img.size == (round(display.figsize[0] * 50), round(display.figsize[1] * 50))


def test_no_optimum_for_a_nonlinear_model_or_when_refused(linear):
    assert all(len(ax.get_lines()) == 1 for ax in visible_axes(ParamsDisplay(linear, optimum=False).figure()))
    df = gradfit.datasets.linear(n=30)
    r = gradfit.fit("exponential", df, y="y", optimizer="sgd", lr=1e-3, steps=5)
    display = ParamsDisplay(r, df)
    assert display.optimum is None
    assert all(len(ax.get_lines()) == 1 for ax in visible_axes(display.figure()))
    # An in-memory fit without its data: the paths, and no optimum, rather than an error.
    assert ParamsDisplay(r).optimum is None
    with pytest.raises(ConfigError, match="'optimum' parameter must be a dict"):
        ParamsDisplay(linear, optimum=[1.0])


def test_many_parameters_show_the_first_twelve_with_a_note():
    df = gradfit.datasets.linear(n=30)
    r = gradfit.fit("mlp", df, y="y", optimizer="sgd", lr=0.01, steps=3)
    fig = ParamsDisplay(r, df).figure()
    axes = visible_axes(fig)
    assert len(axes) == MAX_PANELS
    assert [ax.get_title() for ax in axes] == list(r.history.param_names[:MAX_PANELS])
    assert f"first {MAX_PANELS} of {len(r.history.param_names)}" in fig.get_suptitle()


def test_single_axes_plot(linear):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        plot_params(linear, ax=ax)
        labels = [l.get_label() for l in ax.get_lines() if not l.get_label().startswith("_")]
        assert labels == ["a[0]", "a[1]"]
    finally:
        plt.close(fig)

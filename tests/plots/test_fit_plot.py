"""FitDisplay: the drawn curves are the model's predictions, read back from the artists."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

import gradfit
from gradfit.errors import ConfigError, DataError
from gradfit.plots.fit import FitDisplay, plot_fit


@pytest.fixture(scope="module")
def linear():
    return gradfit.fit("linear", "builtin:linear", y="y", init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=30)


@pytest.fixture(scope="module")
def roller():
    return gradfit.fit(
        "a*t**2 + b*t + c", "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-5, steps=10
    )


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def label_starting(ax, prefix):
    hits = [line for line in ax.get_lines() if line.get_label().startswith(prefix)]
    assert len(hits) == 1, [line.get_label() for line in ax.get_lines()]
    return hits[0]


def test_png_written_at_figsize_times_dpi(linear, tmp_path):
    display = plot_fit(linear)
    path = display.save(tmp_path / "fit.png", dpi=50)
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.size == (round(display.figsize[0] * 50), round(display.figsize[1] * 50))


def test_curve_is_the_model_on_a_dense_sorted_grid(linear):
    display = FitDisplay(linear, grid_points=300)
    ax = display.figure().axes[0]
    curve = label_starting(ax, "fit (")
    x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    data = gradfit.datasets.linear()
    # The even grid, every data x, and nothing more for a straight line.
    even = np.linspace(float(data["x"].min()), float(data["x"].max()), 300).astype(np.float32)
    assert np.all(np.diff(x) > 0)
    assert set(x.tolist()) == set(even.tolist()) | set(data["x"].astype(np.float32).tolist())
    assert x[0] == pytest.approx(data["x"].min()) and x[-1] == pytest.approx(data["x"].max())
    np.testing.assert_allclose(y, linear.predict(x), rtol=1e-5, atol=1e-6)
    # The data are drawn as points at their own coordinates.
    points = next(c for c in ax.collections if isinstance(c, PathCollection))
    np.testing.assert_allclose(points.get_offsets(), data[["x", "y"]].to_numpy(), rtol=1e-6)
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"


def test_legend_names_data_fit_and_start(linear):
    ax = FitDisplay(linear, show_start=True).figure().axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0] == "data"
    assert f"fit (step 30, loss {linear.loss:.3g})" in texts
    assert "start (step 0)" in texts


def test_start_and_step_curves_are_the_model_at_the_snapshots(linear):
    start = lines_by_label(FitDisplay(linear, show_start=True).figure().axes[0])["start (step 0)"]
    x = np.asarray(start.get_xdata())
    # Step 0 is the initial guess a = [-1, 1]: y = -x + 1.
    np.testing.assert_allclose(start.get_ydata(), -x + 1.0, rtol=1e-6, atol=1e-6)
    display = FitDisplay(linear, step=7)
    snap = linear.history.params_at(7)
    curve = label_starting(display.figure().axes[0], "fit (step 7")
    np.testing.assert_allclose(
        curve.get_ydata(), snap["a[0]"] * np.asarray(curve.get_xdata()) + snap["a[1]"], rtol=1e-5, atol=1e-6
    )
    assert display.loss == pytest.approx(linear.history.loss[7])


def test_residuals_panel_shares_x_and_shows_data_minus_model(roller, tmp_path):
    display = FitDisplay(roller, residuals=True, show_start=True)
    fig = display.figure()
    top, bottom = fig.axes
    assert bottom.get_shared_x_axes().joined(top, bottom)
    offsets = bottom.collections[0].get_offsets()
    data = gradfit.datasets.rollercoaster()
    np.testing.assert_allclose(offsets[:, 0], data["t"], rtol=1e-6)
    np.testing.assert_allclose(offsets[:, 1], data["speed"] - roller.predict(data), rtol=1e-4, atol=1e-3)
    path = display.save(tmp_path / "roller.png", dpi=40)
    with Image.open(path) as img:
        assert img.size == (round(display.figsize[0] * 40), round(display.figsize[1] * 40))
        assert img.size[1] > round(FitDisplay.figsize[1] * 40)  # the residuals panel adds height


def test_several_inputs_draw_predicted_against_observed():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    df = pd.DataFrame(X, columns=["u", "v", "w"])
    df["z"] = X @ [1.0, 2.0, -1.0] + 0.1 * rng.normal(size=60)
    r = gradfit.fit("linear", df, y="z", optimizer="sgd", lr=0.1, steps=40)
    ax = FitDisplay(r, df).figure().axes[0]
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], df["z"], rtol=1e-5)
    np.testing.assert_allclose(offsets[:, 1], r.predict(df), rtol=1e-5, atol=1e-6)
    diagonal = lines_by_label(ax)["y = x (perfect fit)"]
    np.testing.assert_array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    assert ax.get_xlabel() == "observed z" and ax.get_ylabel() == "predicted z"


def test_two_input_classifier_zones_are_the_predicted_classes():
    r = gradfit.fit("logistic", "builtin:blobs", y="label", loss="bce", optimizer="sgd", lr=0.1, steps=20)
    display = FitDisplay(r, grid_points=50)
    gx, gy = display.grid
    predicted = (r.predict(np.stack([gx.ravel(), gy.ravel()], axis=1)) > 0).astype(int)
    assert np.mean(predicted == display.zone.ravel()) > 0.99
    ax = display.figure().axes[0]
    blobs = gradfit.datasets.blobs()
    per_class = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in per_class] == blobs["label"].value_counts().sort_index().tolist()
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "x2"


def test_bad_options_raise_clear_errors(linear):
    with pytest.raises(ConfigError, match="'step' parameter must be a step with a parameter snapshot"):
        FitDisplay(linear, step=10_000)
    with pytest.raises(ConfigError, match="'grid_points' parameter must be an integer >= 2. Got 1 instead"):
        FitDisplay(linear, grid_points=1)
    in_memory = gradfit.fit("linear", gradfit.datasets.linear(n=20), y="y", steps=2)
    with pytest.raises(DataError, match="Pass the data again"):
        FitDisplay(in_memory)


def test_plot_into_given_axes(linear):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        display = plot_fit(linear, ax=ax)
        assert isinstance(display, FitDisplay)
        assert any(line.get_label().startswith("fit (") for line in ax.get_lines())
    finally:
        plt.close(fig)

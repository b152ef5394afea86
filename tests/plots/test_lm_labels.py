"""A Levenberg-Marquardt run is labelled as one: iterations, not steps; damping λ, not a learning rate."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import gradfit
from gradfit.plots.fit import FitDisplay
from gradfit.plots.grid import GridDisplay
from gradfit.plots.labels import labels_of
from gradfit.plots.loss import LossDisplay
from gradfit.plots.params import ParamsDisplay


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 5, 100)
    return pd.DataFrame({"x": x, "y": 2.0 * np.exp(0.8 * x) + rng.normal(0, 1.0, x.size)})


@pytest.fixture(scope="module")
def lm(data):
    # From far off, LM damps its first iterations heavily and then lets λ fall to 0 (Gauss-Newton steps).
    return gradfit.fit("a*exp(b*x)", data, y="y", optimizer="lm", init={"a": 1.0, "b": 0.1}, steps=50)


@pytest.fixture(scope="module")
def sgd(data):
    return gradfit.fit(
        "a*exp(b*x)", data, y="y", optimizer="sgd", lr=1e-4, init={"a": 1.0, "b": 0.5}, steps=30, schedule="cosine"
    )


def test_loss_picture_names_the_damping_and_the_iterations(lm):
    display = LossDisplay(lm)
    ax = display.figure().axes[0]
    assert ax.get_xlabel() == "iteration"
    assert ax.get_title().startswith("Levenberg-Marquardt")
    assert display.show_lr  # the damping changed along the fit, so it is drawn...
    twin = display.lr_axes
    assert twin.get_ylabel().startswith("damping λ")  # ...and called what it is
    (line,) = twin.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), lm.history["lr"][np.isfinite(lm.history["lr"])])
    assert "damping λ" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert "learning rate" not in " ".join(t.get_text() for a in (ax, twin) for t in a.texts + [a.yaxis.label])


def test_sgd_keeps_its_learning_rate_and_steps(sgd):
    display = LossDisplay(sgd)
    ax = display.figure().axes[0]
    assert ax.get_xlabel() == "step" and display.lr_axes.get_ylabel() == "learning rate"
    assert ax.get_title().startswith("sgd, lr 0.0001")


def test_params_fit_and_grid_count_iterations(lm, data):
    fig = ParamsDisplay(lm, data, optimum=False).figure()
    assert fig.get_suptitle() == "parameters against iteration (Levenberg-Marquardt)"
    assert {ax.get_xlabel() for ax in fig.axes if ax.get_visible()} == {"iteration"}
    path = ParamsDisplay(lm, data, optimum={"a": 2.0}).figure().axes[0]
    assert "Levenberg-Marquardt" in [t.get_text() for t in path.get_legend().get_texts()]
    legend = [t.get_text() for t in FitDisplay(lm, data, show_start=True).figure().axes[0].get_legend().get_texts()]
    assert f"fit (iteration {lm.steps}, loss {lm.loss:.3g})" in legend and "start (iteration 0)" in legend
    titles = [ax.get_title() for ax in GridDisplay(lm, data, k=3).figure().axes]
    assert all(t.startswith("iteration ") for t in titles)


def test_labels_of():
    assert labels_of(None).rate == "learning rate"
    words = labels_of(type("R", (), {"config": {"optimizer": "lm", "scale": False}})())
    assert (words.method, words.step, words.rate, words.at(3)) == (
        "Levenberg-Marquardt",
        "iteration",
        "damping λ",
        "iteration 3",
    )

"""LossDisplay: the drawn loss is the history's; scales and axes follow the data."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import gradfit
from gradfit.errors import ConfigError
from gradfit.plots.loss import LossDisplay, plot_loss, uses_log_scale


@pytest.fixture(scope="module")
def short_linear():
    # 20 steps of the seed fit: the loss falls from 7.7 to about 0.4, about one decade.
    return gradfit.fit("linear", "builtin:linear", y="y", init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=20)


@pytest.fixture(scope="module")
def exact_line():
    # Noise-free data: the loss falls to rounding error, many decades.
    x = np.linspace(-1, 1, 30)
    return gradfit.fit(
        "linear", pd.DataFrame({"x": x, "y": 2 * x + 1}), y="y", optimizer="sgd", lr=0.5, steps=100, dtype="float64"
    )


def test_png_size(short_linear, tmp_path):
    path = plot_loss(short_linear).save(tmp_path / "loss.png", dpi=60)
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.size == (round(6.4 * 60), round(4.4 * 60))


def test_line_is_the_history_loss_on_a_linear_scale(short_linear):
    ax = LossDisplay(short_linear).figure().axes[0]
    (line,) = [l for l in ax.get_lines() if l.get_label() == "training loss"]
    np.testing.assert_array_equal(line.get_xdata(), short_linear.history.step)
    np.testing.assert_array_equal(line.get_ydata(), short_linear.history.loss)
    assert ax.get_yscale() == "linear"
    assert "sgd" in ax.get_title() and "lr 0.1" in ax.get_title()


def test_log_scale_when_the_loss_spans_decades(exact_line):
    loss = exact_line.history.loss
    assert loss.max() / loss[loss > 0].min() > 1e4
    ax = LossDisplay(exact_line).figure().axes[0]
    assert ax.get_yscale() == "log"
    assert uses_log_scale(np.array([1.0, 1e-3])) and not uses_log_scale(np.array([1.0, 0.02]))


def test_lr_axis_only_when_the_learning_rate_changes(short_linear):
    assert len(LossDisplay(short_linear).figure().axes) == 1
    r = gradfit.fit(
        "linear", "builtin:linear", y="y", optimizer="sgd", lr=0.2, steps=40, schedule="cosine", val_split=0.25
    )
    fig = LossDisplay(r).figure()
    assert len(fig.axes) == 2
    lr_line = fig.axes[1].get_lines()[0]
    finite = np.isfinite(r.history["lr"])
    np.testing.assert_allclose(lr_line.get_ydata(), r.history["lr"][finite])
    assert fig.axes[1].get_ylabel() == "learning rate"
    assert "cosine" in fig.axes[0].get_title()
    # The validation loss is drawn where it was measured.
    (val,) = [l for l in fig.axes[0].get_lines() if l.get_label() == "validation loss"]
    measured = np.isfinite(r.history["val_loss"])
    np.testing.assert_allclose(val.get_ydata(), r.history["val_loss"][measured])
    np.testing.assert_array_equal(val.get_xdata(), r.history.step[measured])


def test_divergence_is_noted():
    r = gradfit.fit(
        "a*t**2 + b*t + c", "builtin:rollercoaster", y="speed", init="random", optimizer="sgd", lr=1e-2, steps=50
    )
    assert r.stop_reason == "diverged"
    display = LossDisplay(r)
    texts = [t.get_text() for t in display.figure().axes[0].texts]
    assert any(t.startswith("diverged at step") for t in texts)
    ok = LossDisplay(gradfit.fit("linear", "builtin:linear", y="y", optimizer="sgd", lr=0.1, steps=3))
    assert not ok.diverged and not ok.figure().axes[0].texts


def test_history_alone_and_bad_input(short_linear):
    display = LossDisplay(short_linear.history)
    np.testing.assert_array_equal(display.loss, short_linear.history.loss)
    with pytest.raises(ConfigError, match="needs a History or a FitResult"):
        LossDisplay([1.0, 2.0])

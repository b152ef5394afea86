"""The loss landscape, against lstsq's optimum and a direct evaluation of the objective as oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradfit
import gradfit.analysis.landscape as landscape_module
from gradfit.analysis.fitted_data import run_data
from gradfit.analysis.landscape import compute_landscape, grid_span
from gradfit.errors import ConfigError, ModelError
from gradfit.losses import get_loss
from gradfit.models.base import unflatten_params
from gradfit.train.objective import Objective

QUADRATIC = "a*t**2 + b*t + c"


@pytest.fixture(scope="module")
def linear_fit():
    return gradfit.fit(
        "linear", "builtin:linear", y="y", init={"a": [-1.0, 1.0]}, optimizer="sgd", lr=0.1, steps=100, dtype="float64"
    )


@pytest.fixture(scope="module")
def quadratic_fit():
    return gradfit.fit(
        QUADRATIC,
        "builtin:rollercoaster",
        y="speed",
        init="random",
        optimizer="sgd",
        lr=1e-5,
        steps=10,
        dtype="float64",
    )


def _direct(result, land, i, j, data=None):
    """Objective.value at grid point (i, j), built by hand from the final parameters."""
    flat = dict(result.flat_params)
    flat[land.names[0]], flat[land.names[1]] = float(land.a[i]), float(land.b[j])
    params = unflatten_params(result.model.specs, flat, dtype=torch.float64)
    ds = run_data(result, data)
    return float(Objective(result.model, get_loss("mse")).value(params, ds.x.double(), ds.y.double()))


def test_minimum_lies_within_one_cell_of_lstsq(linear_fit):
    land = compute_landscape(linear_fit, n=201)
    df = gradfit.datasets.linear(n=100, seed=0)
    x = torch.tensor(df["x"].to_numpy(), dtype=torch.float64)
    y = torch.tensor(df["y"].to_numpy(), dtype=torch.float64)
    slope, intercept = torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], 1), y[:, None]).solution[:, 0].tolist()
    ma, mb, ml = land.minimum()
    assert land.names == ("a[0]", "a[1]")
    assert abs(ma - slope) <= land.a[1] - land.a[0]
    assert abs(mb - intercept) <= land.b[1] - land.b[0]
    assert ml == pytest.approx(np.nanmin(land.loss))
    assert land.loss.shape == (201, 201) and land.loss.dtype == np.float64


def test_grid_values_equal_direct_evaluation(linear_fit):
    land = compute_landscape(linear_fit, n=41)
    rng = np.random.default_rng(0)
    for i, j in zip(rng.integers(0, 41, 5), rng.integers(0, 41, 5)):
        assert land.loss[j, i] == pytest.approx(_direct(linear_fit, land, i, j), abs=1e-10, rel=0)


def test_path_is_the_history_snapshots(linear_fit):
    land = compute_landscape(linear_fit, n=11)
    h = linear_fit.history
    np.testing.assert_array_equal(land.path, h.snapshots[:, :2])
    np.testing.assert_array_equal(land.path_steps, h.snapshot_steps)
    assert len(land.path) == 101
    # The default grid covers the whole path and the final point, with room to spare.
    assert land.a[0] < land.path[:, 0].min() and land.a[-1] > land.path[:, 0].max()
    assert land.b[0] < land.path[:, 1].min() and land.b[-1] > land.path[:, 1].max()


def test_three_parameter_formula_holds_the_third_at_its_final_value(quadratic_fit):
    land = compute_landscape(quadratic_fit, params=("a", "c"), n=(15, 9))
    assert land.names == ("a", "c") and land.loss.shape == (9, 15)
    assert land.held == {"b": quadratic_fit.flat_params["b"]}
    np.testing.assert_array_equal(land.path, quadratic_fit.history.snapshots[:, [0, 2]])
    assert land.loss[4, 7] == pytest.approx(_direct(quadratic_fit, land, 7, 4), abs=1e-10, rel=0)
    default = compute_landscape(quadratic_fit, n=5)
    assert default.names == ("a", "b") and default.held == {"c": quadratic_fit.flat_params["c"]}


def test_callable_model_and_in_memory_data():
    df = gradfit.datasets.linear(n=50, seed=3)

    def line(x, slope, icpt=0.0):
        return slope * x + icpt

    r = gradfit.fit(line, df, x="x", y="y", optimizer="sgd", lr=0.1, steps=20, dtype="float64")
    land = compute_landscape(r, df, n=7)
    assert land.names == ("slope", "icpt")
    assert land.loss[2, 5] == pytest.approx(_direct(r, land, 5, 2, df), abs=1e-10, rel=0)


def test_explicit_span_and_chunking_give_the_same_values(linear_fit, monkeypatch):
    span = ((0.0, 4.0), (1.0, 3.0))
    whole = compute_landscape(linear_fit, n=13, span=span)
    assert (whole.a[0], whole.a[-1], whole.b[0], whole.b[-1]) == (0.0, 4.0, 1.0, 3.0)
    # Force chunks of 3 rows and of 50 grid points: the chunk boundaries must not change a value.
    monkeypatch.setattr(landscape_module, "_BUDGET", 150)
    chunked = compute_landscape(linear_fit, n=13, span=span, chunk_rows=3)
    np.testing.assert_allclose(chunked.loss, whole.loss, rtol=1e-12, atol=0)


def test_default_params_skip_fixed_ones():
    r = gradfit.fit(QUADRATIC, "builtin:rollercoaster", y="speed", fix=["a"], optimizer="sgd", lr=1e-5, steps=3)
    land = compute_landscape(r, n=5)
    assert land.names == ("b", "c") and set(land.held) == {"a"}


def test_grid_span_margins():
    (alo, ahi), (blo, bhi) = grid_span([np.array([[0.0, 5.0], [10.0, 5.0]])])
    assert (alo, ahi) == pytest.approx((-2.0, 12.0))  # 20% of the width each side
    assert (blo, bhi) == pytest.approx((4.5, 5.5))  # a still coordinate: 10% of |5|


def test_bad_inputs_are_refused(linear_fit):
    with pytest.raises(ModelError, match=r"no parameter 'a\[2\]'.*Did you mean"):
        compute_landscape(linear_fit, params=("a[0]", "a[2]"))
    with pytest.raises(ModelError, match="two different parameters"):
        compute_landscape(linear_fit, params=("a[0]", "a[0]"))
    with pytest.raises(ConfigError, match="The 'n' parameter must be a whole number >= 2"):
        compute_landscape(linear_fit, n=1)
    with pytest.raises(ConfigError, match="'span'"):
        compute_landscape(linear_fit, span=((1.0, 0.0), (0.0, 1.0)))
    one = gradfit.fit("k*x", "builtin:linear", y="y", steps=2)
    with pytest.raises(ModelError, match="at least two parameters"):
        compute_landscape(one)

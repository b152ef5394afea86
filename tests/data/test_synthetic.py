"""The seeds' datasets: exact recipes, seeds, separability of the blobs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gradfit.data.synthetic import BUILTIN, WELL_NOISE, WELL_RANGES, blobs, linear, load_builtin, rollercoaster, wells
from gradfit.errors import ConfigError, DataError


@pytest.mark.parametrize("n,seed", [(1, 0), (100, 0), (257, 7)])
def test_linear_matches_the_seed_recipe(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.ones(n, 2)
    X[:, 0].uniform_(-1.0, 1.0, generator=g)
    y = X @ torch.tensor([3.0, 2.0]) + torch.rand(n, generator=g)
    df = linear(n, seed=seed)
    assert list(df.columns) == ["x", "y"]
    assert df["x"].dtype == np.float32 and df["y"].dtype == np.float32
    assert torch.equal(torch.tensor(df["x"].to_numpy()), X[:, 0])
    assert torch.equal(torch.tensor(df["y"].to_numpy()), y)


def test_linear_noise_is_uniform_above_the_line():
    df = linear(2000, seed=3)
    resid = df["y"] - (3 * df["x"] + 2)
    assert resid.min() >= -1e-5 and resid.max() < 1 + 1e-5
    assert df["x"].min() >= -1 and df["x"].max() < 1


def test_rollercoaster_matches_the_seed_recipe():
    g = torch.Generator().manual_seed(5)
    t = torch.arange(0, 20).float()
    speed = torch.randn(20, generator=g) * 3 + 0.75 * (t - 9.5) ** 2 + 1
    df = rollercoaster(seed=5)
    assert list(df.columns) == ["t", "speed"]
    assert df["t"].dtype == np.float32 and df["speed"].dtype == np.float32
    assert torch.equal(torch.tensor(df["t"].to_numpy()), t)
    assert torch.equal(torch.tensor(df["speed"].to_numpy()), speed)


@pytest.mark.parametrize(
    "make", [lambda s: linear(50, seed=s), lambda s: rollercoaster(seed=s), lambda s: blobs(50, seed=s)]
)
def test_same_seed_same_data_other_seed_other_data(make):
    pd.testing.assert_frame_equal(make(1), make(1))
    assert not make(1).equals(make(2))


def test_global_rng_is_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    linear(10)
    rollercoaster()
    blobs(10)
    assert torch.equal(torch.rand(3), expected)


def test_blobs_shape_labels_and_centres():
    df = blobs(3000, n_classes=3, seed=0, spread=0.5)
    assert list(df.columns) == ["x1", "x2", "label"]
    assert pd.api.types.is_integer_dtype(df["label"])
    assert sorted(df["label"].unique()) == [0, 1, 2]
    for k in range(3):
        part = df[df["label"] == k]
        centre = 3 * np.array([math.cos(2 * math.pi * k / 3), math.sin(2 * math.pi * k / 3)])
        np.testing.assert_allclose(part[["x1", "x2"]].mean().to_numpy(), centre, atol=0.06)
        np.testing.assert_allclose(part[["x1", "x2"]].std().to_numpy(), [0.5, 0.5], atol=0.06)


@pytest.mark.parametrize("seed", range(5))
def test_default_blobs_are_linearly_separable(seed):
    df = blobs(seed=seed)
    pts, label = df[["x1", "x2"]].to_numpy(np.float64), df["label"].to_numpy()
    m0, m1 = pts[label == 0].mean(axis=0), pts[label == 1].mean(axis=0)
    # The perpendicular bisector of the class means must put every point on its own side.
    w = m1 - m0
    b = -w @ (m0 + m1) / 2
    assert np.all((pts @ w + b > 0) == (label == 1))


def test_large_n_is_vectorised():
    df = linear(10**6, seed=0)
    assert len(df) == 10**6 and not df.isna().any().any()


def test_load_builtin_passes_arguments():
    pd.testing.assert_frame_equal(load_builtin("linear", n=7, seed=2), linear(7, seed=2))
    assert set(BUILTIN) == {"linear", "rollercoaster", "blobs", "wells"}


def test_load_builtin_unknown_name_lists_names_and_suggests():
    with pytest.raises(
        DataError, match=r"(?s)Unknown built-in dataset 'linaer'.*blobs, linear, rollercoaster, wells.*'linear'"
    ):
        load_builtin("linaer")


def test_load_builtin_unknown_parameter():
    with pytest.raises(DataError, match=r"does not take 'm'.*n, seed"):
        load_builtin("linear", m=3)


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 2.5}, {"seed": -1}, {"n_classes": 0}, {"spread": -1.0}])
def test_bad_parameters_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="parameter must be"):
        blobs(**kwargs)


def test_wells_draws_one_decay_curve_per_well_from_its_seed():
    df = wells(groups=12, n=25, seed=4)
    assert list(df.columns) == ["well", "x", "y", "a_true", "b_true", "c_true"] and len(df) == 300
    assert df["well"].unique().tolist() == [f"W{k:02d}" for k in range(1, 13)]
    pd.testing.assert_frame_equal(df, wells(groups=12, n=25, seed=4))
    assert not df.equals(wells(groups=12, n=25, seed=5))
    for name, (low, high) in WELL_RANGES.items():
        per_well = df.groupby("well")[f"{name}_true"]
        assert (per_well.nunique() == 1).all() and df[f"{name}_true"].between(low, high).all()
    noise = df["y"] - (df["a_true"] * np.exp(-df["b_true"] * df["x"]) + df["c_true"])
    assert abs(noise.std() - WELL_NOISE) < 0.01
    assert wells(groups=120, n=1)["well"].iloc[-1] == "W120"


def test_wells_grouped_fit_finds_each_wells_truth_as_scipy_does():
    from scipy.optimize import curve_fit

    import gradfit

    r = gradfit.fit("a*exp(-b*x) + c", "builtin:wells", y="y", group="well", init={"a": 1.0, "b": 1.0, "c": 0.0})
    assert r.counts() == {"converged": 12}
    df = load_builtin("wells")
    table = r.to_pandas().set_index("well")
    for well, rows in df.groupby("well"):
        x, y = rows["x"].to_numpy(), rows["y"].to_numpy()
        want, _ = curve_fit(lambda x, a, b, c: a * np.exp(-b * x) + c, x, y, p0=[1.0, 1.0, 0.0], ftol=1e-12, xtol=1e-12)
        got = table.loc[well, ["a", "b", "c"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        truth = rows[["a_true", "b_true", "c_true"]].iloc[0].to_numpy()
        stderr = table.loc[well, ["a_stderr", "b_stderr", "c_stderr"]].to_numpy(dtype=float)
        assert (np.abs(got - truth) < 5 * stderr).all(), (well, got, truth, stderr)


@pytest.mark.parametrize("kwargs", [{"groups": 0}, {"n": 0}, {"groups": 1.5}])
def test_wells_refuses_bad_sizes(kwargs):
    with pytest.raises(ConfigError, match="must be an integer >= 1"):
        wells(**kwargs)

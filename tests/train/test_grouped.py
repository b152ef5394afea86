"""gradfit.fit(..., group=COL): per group, scipy's curve_fit and the one-fit gradfit LM give the same parameters and
standard errors (1e-6 relative); group keys of any dtype; a bad group gets its status while the others are bit for
bit those of a run without it; bad input gives clear errors; memory stays bounded for 10^6 groups."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit
from tests.helpers.peak import needs_proc, run_measured

import gradfit
from gradfit.errors import ConfigError, DataError, ModelError
from gradfit.train.grouped import _chunks, _factorise
from gradfit.train.grouped_result import GroupedResult

FORMULA = "a*exp(-b*x) + c"
TIGHT = dict(optimizer_options={"ftol": 1e-14, "xtol": 1e-14, "gtol": 1e-14})
START = {"a": 1.0, "b": 1.0, "c": 0.0}


def _f(x, a, b, c):
    return a * np.exp(-b * x) + c


def _table(sizes, seed=0, keys=None):
    rng = np.random.default_rng(seed)
    parts = []
    for g, n in enumerate(sizes):
        x = np.linspace(0, 4, n)
        a, b, c = rng.uniform(1, 3), rng.uniform(0.3, 1.5), rng.uniform(-0.5, 0.5)
        key = keys[g] if keys is not None else g
        parts.append(pd.DataFrame({"well": key, "x": x, "y": _f(x, a, b, c) + rng.normal(0, 0.05, n)}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # groups' rows interleaved


def _scipy(sub, sigma=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, cov = curve_fit(
            _f, sub.x.values, sub.y.values, p0=[1, 1, 0], sigma=sigma, ftol=1e-15, xtol=1e-15, gtol=1e-15
        )
    return p, np.sqrt(np.diag(cov))


def test_string_keys_and_different_sizes_equal_curve_fit_per_group():
    keys = ["well-C", "well-A", "B7", "zz", "a1"]
    frame = _table([8, 30, 12, 50, 5], keys=keys)
    result = gradfit.fit(FORMULA, frame, y="y", group="well", init=START, **TIGHT)
    assert isinstance(result, GroupedResult)
    assert list(result.keys) == sorted(keys) and result.names == ("a", "b", "c")
    assert result.counts() == {"converged": 5} and result.success
    for i, key in enumerate(result.keys):
        sub = frame[frame.well == key]
        p, se = _scipy(sub)
        np.testing.assert_allclose(result.params[i], p, rtol=1e-6)
        np.testing.assert_allclose(result.stderr[i], se, rtol=1e-6)
        resid = _f(sub.x.values, *p) - sub.y.values
        assert result.loss[i] == pytest.approx(float(np.mean(resid**2)), rel=1e-9)
        assert result.n_rows[i] == len(sub)
    table = result.to_pandas()
    expected = ["well", "a", "b", "c", "a_stderr", "b_stderr", "c_stderr", "loss", "sum_squares", "n_rows"]
    assert list(table.columns) == [*expected, "steps", "status", "message"]
    assert (table.steps > 0).all() and (table.message.str.len() > 0).all()


@pytest.mark.parametrize("options", [TIGHT, {}], ids=["tight", "default tolerances"])
def test_each_group_equals_a_one_fit_gradfit_lm(options):
    frame = _table([10, 20, 15, 40, 7], seed=4)
    result = gradfit.fit(FORMULA, frame, y="y", group="well", init=START, **options)
    for i, key in enumerate(result.keys):
        one = gradfit.fit(FORMULA, frame[frame.well == key], y="y", init=START, optimizer="lm", **options)
        np.testing.assert_allclose(result.params[i], list(one.flat_params.values()), rtol=1e-6)
        np.testing.assert_allclose(result.stderr[i], one.uncertainty["stderr"], rtol=1e-6)
        assert result.loss[i] == pytest.approx(one.loss, rel=1e-9)


def test_fixed_parameters_are_held_and_the_rest_equal_curve_fit():
    frame = _table([15, 25, 9], seed=14)
    result = gradfit.fit(FORMULA, frame, y="y", group="well", init=dict(START, c=0.1), fix=["c"], **TIGHT)
    assert (result.params[:, 2] == 0.1).all() and np.isnan(result.stderr[:, 2]).all()
    for i, key in enumerate(result.keys):
        sub = frame[frame.well == key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, cov = curve_fit(
                lambda x, a, b: _f(x, a, b, 0.1), sub.x, sub.y, p0=[1, 1], ftol=1e-15, xtol=1e-15, gtol=1e-15
            )
        np.testing.assert_allclose(result.params[i, :2], p, rtol=1e-6)
        np.testing.assert_allclose(result.stderr[i, :2], np.sqrt(np.diag(cov)), rtol=1e-6)
    function = lambda x, a, b, c: a * np.e ** (-b * x) + c  # noqa: E731 (row-wise autograd, a general path)
    general = gradfit.fit(function, frame, x="x", y="y", group="well", init=dict(START, c=0.1), fix="c", **TIGHT)
    assert general.timings["jacobian"] == "row-wise autograd"
    np.testing.assert_allclose(general.params, result.params, rtol=1e-7)


def test_bounds_give_the_constrained_minimum_of_each_group():
    from scipy.optimize import least_squares

    frame = _table([20, 30, 25, 15], seed=15)
    bounds = {"b": (0.2, 0.6), "c": (-0.2, None)}
    result = gradfit.fit(FORMULA, frame, y="y", group="well", init=dict(START, b=0.5), bounds=bounds, **TIGHT)
    free = gradfit.fit(FORMULA, frame, y="y", group="well", init=dict(START, b=0.5), **TIGHT)
    active = 0
    for i, key in enumerate(result.keys):
        sub = frame[frame.well == key]
        ref = least_squares(
            lambda q, sub=sub: _f(sub.x.values, *q) - sub.y.values,
            [1.0, 0.5, 0.0],
            bounds=([-np.inf, 0.2, -0.2], [np.inf, 0.6, np.inf]),
            ftol=1e-15,
            xtol=1e-15,
            gtol=1e-15,
        )
        np.testing.assert_allclose(result.params[i], ref.x, rtol=1e-6, atol=1e-9)
        on_bound = np.isclose(result.params[i, 1], [0.2, 0.6]).any() or np.isclose(result.params[i, 2], -0.2)
        active += bool(on_bound)
        if not on_bound:  # the box does not bind: the free minimum
            np.testing.assert_allclose(result.params[i], free.params[i], rtol=1e-7)
    assert 0 < active < len(result.keys)  # some groups bound, some not
    with pytest.raises(gradfit.ModelError, match=r"outside the bounds: the first, group \d+, has b = "):
        gradfit.fit(FORMULA, frame, y="y", group="well", init=START, bounds={"b": (0, 0.5)})


def test_sigma_column_equals_curve_fit_with_sigma():
    frame = _table([15, 25], seed=5)
    frame["err"] = np.random.default_rng(6).uniform(0.02, 0.2, len(frame))
    result = gradfit.fit(FORMULA, frame, y="y", group="well", init=START, sigma="err", **TIGHT)
    for i, key in enumerate(result.keys):
        sub = frame[frame.well == key]
        p, se = _scipy(sub, sigma=sub.err.values)
        np.testing.assert_allclose(result.params[i], p, rtol=1e-6)
        np.testing.assert_allclose(result.stderr[i], se, rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["lm", "sgd"])
def test_rows_of_weight_0_do_not_count_as_rows(optimizer):
    """A group whose rows all weigh 0 has no rows: too_few_rows (it was 'singular', its loss 0/0, and gradient descent
    ran its whole budget on it); a group with some rows of weight 0 has the errors of curve_fit without them (its
    degrees of freedom counted them). Found by tests/test_cli_corpus_batched.py."""
    frame = _table([12, 10, 9], seed=3)
    frame["w"] = 1.0
    frame.loc[frame.well == 0, "w"] = 0.0
    frame.loc[frame.index[frame.well == 1][:4], "w"] = 0.0
    options = TIGHT if optimizer == "lm" else {"optimizer": "sgd", "lr": 0.05, "steps": 20}
    result = gradfit.fit(FORMULA, frame, y="y", group="well", init=START, weights="w", **options)
    table = result.to_pandas().set_index("well")
    assert table.loc[0, "status"] == "too_few_rows" and "weight 0 not counted" in table.loc[0, "message"]
    assert table.loc[0, "steps"] == 0 and np.isnan(table.loc[0, "a"])
    if optimizer == "lm":
        sub = frame[(frame.well == 1) & (frame.w > 0)]
        p, se = _scipy(sub)
        np.testing.assert_allclose(result.params[1], p, rtol=1e-6)
        np.testing.assert_allclose(result.stderr[1], se, rtol=1e-6)


def test_a_bad_group_leaves_the_others_bit_for_bit():
    good = _table([10, 20, 15], seed=8)
    few = pd.DataFrame({"well": 99, "x": [1.0, 2.0], "y": [1.0, 0.5]})  # 2 rows, 3 parameters
    flat = pd.DataFrame({"well": 98, "x": [1.0] * 6, "y": np.linspace(1, 2, 6)})  # every x equal: singular
    wild = pd.DataFrame({"well": 97, "x": np.linspace(0, 4, 8), "y": np.linspace(1, 2, 8)})  # started at b = -1000
    bad = pd.concat([good, few, flat, wild])
    starts = dict(START, b=np.array([1.0, 1.0, 1.0, -1000.0, 1.0, 1.0]))  # keys 0, 1, 2, 97, 98, 99
    both = gradfit.fit(FORMULA, bad, y="y", group="well", init=starts, **TIGHT)
    alone = gradfit.fit(FORMULA, good, y="y", group="well", init=START, **TIGHT)
    status = dict(zip(both.keys.tolist(), both.status))
    assert status[99] == "too_few_rows" and status[98] == "singular" and status[97] == "diverged"
    rows = [list(both.keys).index(k) for k in alone.keys]
    for field in ("params", "stderr", "loss", "steps"):
        assert np.array_equal(getattr(both, field)[rows], getattr(alone, field)), field
    assert both.counts() == {"converged": 3, "diverged": 1, "singular": 1, "too_few_rows": 1} and both.success


def test_drop_nan_drops_rows_and_keeps_their_groups_right():
    frame = _table([12, 18, 15], seed=12)
    holes = frame.copy()
    holes.loc[[0, 5, 9], "y"] = np.nan
    dropped = gradfit.fit(FORMULA, holes, y="y", group="well", init=START, drop_nan=True, **TIGHT)
    clean = gradfit.fit(FORMULA, holes.dropna(), y="y", group="well", init=START, **TIGHT)
    assert np.array_equal(dropped.params, clean.params) and np.array_equal(dropped.n_rows, clean.n_rows)
    with pytest.raises(DataError):
        gradfit.fit(FORMULA, holes, y="y", group="well", init=START)


def test_per_group_starts_and_model_guesses():
    frame = _table([20, 30, 25], seed=9)
    starts = {"a": np.array([1.0, 2.0, 1.5]), "b": 1.0, "c": np.zeros(3)}
    given = gradfit.fit(FORMULA, frame, y="y", group="well", init=starts, **TIGHT)
    guessed = gradfit.fit("exponential", frame, x="x", y="y", group="well", **TIGHT)  # the zoo's guess per group
    for i, key in enumerate(given.keys):
        p, _ = _scipy(frame[frame.well == key])
        np.testing.assert_allclose(given.params[i], p, rtol=1e-6)
        np.testing.assert_allclose(guessed.params[i], p * [1, -1, 1], rtol=1e-6)  # the zoo's a*exp(b*x) + c
    with pytest.raises(ConfigError, match="one value per group"):
        gradfit.fit(FORMULA, frame, y="y", group="well", init={"a": [1.0, 2.0]})


def test_the_general_path_equals_the_formula_path():
    frame = _table([10, 20], seed=10)
    fast = gradfit.fit(FORMULA, frame, y="y", group="well", init=START, **TIGHT)
    model = gradfit.fit(lambda x, a, b, c: a * np.e ** (-b * x) + c, frame, x="x", y="y", group="well", init=START)
    assert fast.timings["jacobian"] == "formula derivative" and model.timings["jacobian"] == "row-wise autograd"
    np.testing.assert_allclose(model.params, fast.params, rtol=1e-6)


def test_bad_input_is_refused_clearly():
    frame = _table([5, 6])
    with pytest.raises(DataError, match="'wel' is not in the data.*did you mean 'well'"):
        gradfit.fit(FORMULA, frame, y="y", group="wel")
    holes = frame.copy()
    holes.loc[3, "well"] = np.nan
    with pytest.raises(DataError, match="group column 'well' has 1 missing value"):
        gradfit.fit(FORMULA, holes, y="y", group="well")
    with pytest.raises(ConfigError, match="'lm' \\(the default\\) or gradient descent.*got 'lbfgs'"):
        gradfit.fit(FORMULA, frame, y="y", group="well", optimizer="lbfgs")
    with pytest.raises(ConfigError, match="does not take 'lr'"):
        gradfit.fit(FORMULA, frame, y="y", group="well", optimizer="lm", lr=0.1)
    with pytest.raises(ConfigError, match="Unknown option\\(s\\) for Levenberg-Marquardt: 'factor'"):
        gradfit.fit(FORMULA, frame, y="y", group="well", optimizer_options={"factor": 10.0})
    with pytest.raises(ConfigError, match="option 'xtol' must be a number > 0"):
        gradfit.fit(FORMULA, frame, y="y", group="well", optimizer_options={"xtol": -1})
    with pytest.raises(ConfigError, match="does not take 'stream'"):
        gradfit.fit(FORMULA, frame, y="y", group="well", stream=True)
    with pytest.raises(ConfigError, match="loss='mse'"):
        gradfit.fit(FORMULA, frame, y="y", group="well", loss="mae")
    with pytest.raises(ConfigError, match="no sum\\(\\) or mean\\(\\) over rows"):
        gradfit.fit("a*x/mean(x) + b", frame, y="y", group="well")
    with pytest.raises(DataError, match="cannot also be an input"):
        gradfit.fit("linear", frame, x="x,well", y="y", group="well")


def test_a_model_that_reads_the_group_column_is_refused_saying_so():
    """Grouping by a formula's input said the formula had no input column ('x' was no column); grouping by the
    target fitted one constant per group (every group too_few_rows, exit 1). Found by test_cli_corpus_batched.py."""
    frame = _table([5, 6]).assign(t=lambda f: f.x)
    with pytest.raises(DataError, match="reads the group column 'x' as an input.*Group by another column"):
        gradfit.fit(FORMULA, frame, y="y", group="x")
    with pytest.raises(DataError, match="group column 'y' is the target"):
        gradfit.fit(FORMULA, frame, y="y", group="y")
    with pytest.raises(DataError, match="cannot also be an input of the model: leave it out of x"):
        gradfit.fit(FORMULA, frame, x="x", y="y", group="x")
    # a column the formula does not read is a group column like any other; a misspelt formula keeps its own message
    fitted = gradfit.fit(FORMULA, frame, y="y", group="t", init={"a": 1, "b": 1, "c": 0})
    assert len(fitted) == frame.t.nunique()
    with pytest.raises(ModelError, match="no input column") as refused:
        gradfit.fit("a*exp(-b*xx) + c", frame.drop(columns="t"), y="y", group="x")
    assert "group column" not in str(refused.value)


@pytest.mark.parametrize("values", [np.repeat([3, 5, 9, 10], [2, 1, 4, 3]), np.repeat([-1.5, 0.0, 2.0], 3), [1, 1]])
def test_a_sorted_group_column_gives_the_codes_pandas_gives(values):
    frame = pd.DataFrame({"g": values})
    codes, keys = _factorise(frame, "g")
    expected_codes, expected_keys = pd.factorize(frame.g, sort=True)
    assert codes.tolist() == expected_codes.tolist() and keys.tolist() == expected_keys.tolist()
    shuffled = frame.sample(frac=1.0, random_state=0)  # not sorted: pandas' way
    codes, keys = _factorise(shuffled, "g")
    assert keys.tolist() == expected_keys.tolist() and (keys[codes] == shuffled.g.to_numpy()).all()


def test_chunks_cover_every_group_within_their_rows():
    sizes = np.sort(np.random.default_rng(0).integers(1, 40, 1000))
    chunks = list(_chunks(sizes, 1000, 500, "cpu"))
    assert chunks[0].start == 0 and chunks[-1].stop == 1000
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
    assert all((c.stop - c.start) * sizes[c.stop - 1] <= 500 or c.stop - c.start == 1 for c in chunks)


_MILLION = """
import sys
import numpy as np
import pandas as pd
import gradfit

G, m = int(sys.argv[1]), 4
rng = np.random.default_rng(0)
x = np.tile(np.arange(m, dtype=float), G)
frame = pd.DataFrame({"g": np.repeat(np.arange(G), m), "x": x, "y": 2 * x + 1 + rng.normal(0, 0.1, G * m)})
gradfit.fit("a*x + b", frame.iloc[:40], y="y", group="g", init={"a": 1.0, "b": 0.0})  # warm-up
reset_peak()
r = gradfit.fit("a*x + b", frame, y="y", group="g", init={"a": 1.0, "b": 0.0})
print_measured(converged=r.counts().get("converged", 0), table=int(frame.memory_usage().sum()))
"""


@pytest.mark.slow
def test_memory_is_bounded_for_a_million_groups():
    needs_proc()
    small = run_measured(_MILLION, 100_000)
    large = run_measured(_MILLION, 1_000_000)
    assert small["converged"] == 100_000 and large["converged"] == 1_000_000
    # Chunked states: what grows with the groups is the rows' own copies (the table is 96 bytes per group here) and
    # the result's columns, measured at 241 bytes per group and 3.1 times the table in all. Fitting all 4e6 rows as
    # one chunk would add its predictions, Jacobian and temporaries (~15 float64 per row, 480 bytes per group).
    per_group = (large["peak"] - small["peak"]) / 900_000
    assert per_group < 400, per_group
    assert large["peak"] < 4 * large["table"] + 100e6, (large["peak"], large["table"])


def test_a_group_whose_rows_are_all_dropped_is_too_few_rows_and_the_others_unchanged():
    frame = pd.DataFrame({"g": np.repeat([1, 2, 3], 6), "x": np.tile(np.linspace(0.0, 1.0, 6), 3)})
    frame["y"] = 2 * frame.x + 1 + np.repeat([0.0, 0.1, 0.2], 6) + 0.01 * np.sin(np.arange(18))
    emptied = frame.assign(y=np.where(frame.g == 3, np.nan, frame.y))
    for optimizer in ("lm", "sgd"):
        options = {"optimizer": optimizer, "steps": 50} | ({"lr": 0.1} if optimizer == "sgd" else {})
        kept = gradfit.fit("a*x + b", frame[frame.g != 3], y="y", group="g", **options).to_pandas()
        got = gradfit.fit("a*x + b", emptied, y="y", group="g", drop_nan=True, **options).to_pandas()
        assert got.loc[got.g == 3, "status"].item() == "too_few_rows"
        assert got.loc[got.g == 3, "n_rows"].item() == 0
        pd.testing.assert_frame_equal(got[got.g != 3].reset_index(drop=True), kept, check_exact=True)


def test_a_group_too_large_for_the_memory_budget_is_refused_before_its_fit(monkeypatch):
    from gradfit.errors import MemoryBudgetError

    rows = 200_000
    frame = pd.DataFrame({"well": np.repeat([0, 1], [rows, 5]), "x": np.linspace(0, 4, rows + 5)})
    frame["y"] = 2 * np.exp(-0.5 * frame.x)
    monkeypatch.setenv("GRADFIT_MEMORY", "60MB")  # the table (~5 MB) fits; one group's Jacobian and temporaries not
    with pytest.raises(MemoryBudgetError, match="largest group has 200,000 rows.*Split the largest groups"):
        gradfit.fit(FORMULA, frame, y="y", group="well", init=START)

"""Sweeps: every member equals a separate gradfit.fit with the same options (the oracle), whatever the others do."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import gradfit
from gradfit.errors import ConfigError

FORMULA = "a*exp(-b*x) + c"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3, 200)
    w = rng.uniform(0.2, 2.0, 200)
    return {"x": x, "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.05 * rng.normal(size=200), "w": w}


def _fit(model, data, row, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradfit.fit(model, data, y="y", optimizer=row["optimizer"], lr=row["lr"], seed=row["seed"], **options)


def _same(row, fit, names):
    """The member's parameters, final loss, steps and stop reason are the fit's (1e-6 relative, float64)."""
    assert (row["stop_reason"], row["steps"]) == (fit.stop_reason, fit.steps), (row, fit.message)
    if math.isfinite(fit.loss):
        assert row["loss"] == pytest.approx(fit.loss, rel=1e-6, abs=1e-300)
    else:
        assert not math.isfinite(row["loss"])
    for name in names:
        assert row[name] == pytest.approx(fit.flat_params[name], rel=1e-6, abs=1e-9), name


def _sweep(model, data, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradfit.sweep(model, data, y="y", **options)


@pytest.mark.parametrize(
    ("model", "lrs", "options"),
    [
        # sufficient statistics; the large rates overflow the loss (diverged, rolled back) or end above the start
        ("linear", [0.01, 0.3, 0.9, 3.0, 40.0], {"steps": 120}),
        # the fused formula pass; lr 50 overflows within the budget
        (FORMULA, [0.01, 0.3, 1.0, 50.0], {"steps": 150}),
        # tolerance: members converge at different steps while the others go on
        (FORMULA, [0.05, 0.3, 0.6], {"steps": 400, "tol": 1e-7}),
        ("linear", [0.05, 0.3, 0.6], {"steps": 400, "tol": 1e-9, "target_loss": 0.08}),
        # autograd batched by vmap (the fast paths off), another loss
        (FORMULA, [0.02, 0.4], {"steps": 80, "row_pass": "autograd", "loss": "huber"}),
        # row weights: the statistics and the fused pass weighted
        ("linear", [0.05, 0.5], {"steps": 60, "weights": "w", "x": "x"}),
        (FORMULA, [0.05, 0.5], {"steps": 60, "weights": "w"}),
    ],
)
def test_each_member_equals_a_separate_fit(data, model, lrs, options):
    optimizers = ["sgd", "momentum", "nesterov", "adam"]
    sweep = _sweep(model, data, lr=lrs, optimizer=optimizers, dtype="float64", **options)
    assert len(sweep) == 4 * len(lrs)
    assert [(r["optimizer"], r["lr"]) for r in sweep.rows] == [(o, lr) for o in optimizers for lr in lrs]
    for row in sweep.rows:
        _same(row, _fit(model, data, row, dtype="float64", **options), sweep.param_names)


def test_the_cases_above_cover_divergence_tolerance_and_the_target(data):
    lin = _sweep("linear", data, lr=[0.1, 40.0], steps=120, dtype="float64")
    assert [r["stop_reason"] for r in lin.rows] == ["max_steps", "diverged"]
    assert 0 < lin.rows[1]["steps"] < 120  # stopped at the overflow, its last finite step kept
    tol = _sweep(
        FORMULA, data, lr=[0.05, 0.3, 0.6], optimizer=["sgd", "momentum", "adam"], steps=400, tol=1e-7, dtype="float64"
    )
    steps = [r["steps"] for r in tol.rows if r["stop_reason"] == "converged"]
    assert len(set(steps)) >= 2  # converged at different steps
    target = _sweep("linear", data, lr=[0.3], optimizer="adam", steps=400, target_loss=0.08, dtype="float64")
    assert target.rows[0]["stop_reason"] == "target_loss"


def test_a_diverging_member_does_not_change_the_others(data):
    alone = _sweep(FORMULA, data, lr=[0.01, 0.3], optimizer=["sgd", "adam"], steps=100, dtype="float64")
    mixed = _sweep(FORMULA, data, lr=[0.01, 50.0, 0.3], optimizer=["sgd", "adam"], steps=100, dtype="float64")
    assert any(r["stop_reason"] == "diverged" for r in mixed.rows)
    kept = [r for r in mixed.rows if r["lr"] != 50.0]
    for a, b in zip(alone.rows, kept):
        assert {k: a[k] for k in ("loss", "steps", "stop_reason", *alone.param_names)} == {
            k: b[k] for k in ("loss", "steps", "stop_reason", *alone.param_names)
        }


def test_random_starts_are_those_a_fit_with_the_seed_draws(data):
    sweep = _sweep(FORMULA, data, lr=[0.2], seeds=3, init_random=True, steps=40, dtype="float64")
    assert [r["seed"] for r in sweep.rows] == [0, 1, 2]
    starts = set()
    for row in sweep.rows:
        fit = _fit(FORMULA, data, row, init="random", steps=40, dtype="float64")
        _same(row, fit, sweep.param_names)
        starts.add(tuple(fit.init_params.values()))
    assert len(starts) == 3


def test_float32_members_follow_float32_fits(data):
    sweep = _sweep("linear", data, lr=[0.05, 0.5], optimizer=["sgd", "nesterov"], steps=60)
    for row in sweep.rows:
        fit = _fit("linear", data, row, steps=60)
        assert row["stop_reason"] == fit.stop_reason and row["steps"] == fit.steps
        for name in sweep.param_names:
            assert row[name] == pytest.approx(fit.flat_params[name], rel=1e-4, abs=1e-5)


def test_table_history_and_best(data):
    sweep = _sweep("linear", data, lr=[0.01, 0.1, 40.0], steps=50, dtype="float64")
    frame = sweep.to_pandas()
    assert list(frame.columns[:8]) == [
        "member",
        "optimizer",
        "lr",
        "seed",
        "loss",
        "start_loss",
        "steps",
        "stop_reason",
    ]
    assert sweep.best["lr"] == 0.1
    assert [r["lr"] for r in sweep.ranked()] == [0.1, 0.01, 40.0]  # 40 ended above its start, not at inf
    fit = _fit("linear", data, sweep.rows[1], steps=50, dtype="float64")
    history = sweep.histories()[1]
    assert len(history) == 51
    np.testing.assert_allclose(history, fit.history.loss[: len(history)], rtol=1e-9)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 16}, "mini-batches"),
        ({"val_split": 0.2}, "validation"),
        ({"schedule": "cosine"}, "schedules"),
        ({"bounds": {"a": (0, 1)}}, "bounds"),
        ({"optimizer": "lbfgs"}, "sweep runs the optimizers"),
        ({"optimizer": "lm"}, "sweep runs the optimizers"),
        ({"lr": [0.1, -1.0]}, None),
        ({"steps": -3}, None),
        ({"optimizer": "sgdd"}, None),
        ({"tol": "small"}, None),
        ({"init_random": True, "init": {"a": 1.0}}, "not both"),
        ({"lr": "1e-4:1:50"}, "lr takes a number or a list of numbers"),
    ],
)
def test_bad_options_are_refused_as_a_fit_refuses_them(data, options, message):
    options = {"lr": [0.1], **options}
    with pytest.raises(ConfigError) as swept:
        _sweep(FORMULA, data, **options)
    if message is not None:
        assert message in str(swept.value)
        return
    lrs = options.pop("lr")
    bad_lr = [v for v in lrs if v < 0]
    with pytest.raises(ConfigError) as fitted:
        gradfit.fit(FORMULA, data, y="y", lr=bad_lr[0] if bad_lr else lrs[0], **{"optimizer": "sgd", **options})
    assert str(swept.value) == str(fitted.value)


def test_a_sweep_beyond_the_memory_budget_is_refused_before_it_runs(data, monkeypatch):
    monkeypatch.setenv("GRADFIT_MEMORY", "1MB")
    with pytest.raises(gradfit.MemoryBudgetError, match="members' loss histories"):
        _sweep("linear", data, lr=[0.1] * 200, steps=5000)


@pytest.mark.parametrize("seeds", [10**9, 2**63, list(range(50_001))])
def test_a_sweep_of_too_many_members_is_refused_before_anything_is_built(data, seeds):
    """seeds=10**9 was a MemoryError and 2**63 an OverflowError (the members' list was built before any check)."""
    with pytest.raises(ConfigError, match=r"members, more than the 100000 a sweep runs.*--seeds"):
        _sweep(FORMULA, data, lr=[0.1, 0.2], seeds=seeds, steps=5)


@pytest.mark.slow
@pytest.mark.parametrize(("dtype", "rel"), [("float64", 1e-10), ("float32", 1e-3)])
def test_the_compiled_pass_equals_the_eager_one_member_by_member(data, dtype, rel):
    """row_pass="compiled": compiled for the first shape, then once with dynamic shapes, members stopping included."""
    common = dict(lr=[0.01, 0.3, 50.0], optimizer=["sgd", "adam"], steps=120, dtype=dtype)
    compiled = _sweep(FORMULA, data, row_pass="compiled", **common)
    eager = _sweep(FORMULA, data, **common)
    assert (compiled.row_pass, eager.row_pass) == ("compiled fused formula", "fused formula")
    assert any(r["stop_reason"] == "diverged" for r in eager.rows)
    for a, b in zip(compiled.rows, eager.rows):
        assert (a["stop_reason"], a["steps"]) == (b["stop_reason"], b["steps"])
        for name in ("loss", *eager.param_names):
            assert a[name] == pytest.approx(b[name], rel=rel), name


def test_a_sweep_compiles_its_fused_pass_by_the_rule_a_single_fit_follows():
    from gradfit.experiments.sweep_members import wants_compile
    from gradfit.train.compiled_pass import pays_back

    assert not wants_compile("auto", True, 256 * 10_000, 100)  # the benchmark's sweep: eager, no compile
    assert pays_back(256 * 100_000, 3000) and wants_compile("auto", True, 256 * 100_000, 3000)  # a long sweep
    assert wants_compile("compiled", True, 10, 1)  # asked for, whatever the length
    assert not wants_compile("compiled", False, 10**9, 10**6)  # no fused pass to compile
    assert not wants_compile("autograd", True, 10**9, 10**6)

"""SweepDisplay draws the sweep's own numbers: one line per optimizer through the final losses, divergence on top."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure

import gradfit
from gradfit.plots.sweep import SweepDisplay, diverged


@pytest.fixture(scope="module")
def sweep():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradfit.sweep("linear", "builtin:linear", y="y", lr=[1e-3, 1e-2, 0.1, 1e3], optimizer=["sgd", "adam"],
                             steps=60, dtype="float64")  # fmt: skip


def test_lines_are_the_final_losses_and_divergence_sits_above_them(sweep):
    ax = SweepDisplay(sweep).plot(Figure().add_subplot())
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    for name in ("sgd", "adam"):
        rows = [r for r in sweep.rows if r["optimizer"] == name]
        want = [np.nan if diverged(r) else r["loss"] for r in rows]
        np.testing.assert_allclose(lines[name].get_ydata(), want)
        np.testing.assert_allclose(lines[name].get_xdata(), [r["lr"] for r in rows])
    marks = {c.get_label(): c.get_offsets() for c in ax.collections}
    bad = [r for r in sweep.rows if diverged(r)]
    assert bad and "sgd: diverged" in marks
    top = max(r["loss"] for r in sweep.rows if not diverged(r))
    assert (np.asarray(marks["sgd: diverged"])[:, 1] > top).all()
    assert ax.get_ylim()[1] >= np.asarray(marks["sgd: diverged"])[:, 1].max()


def test_seeds_draw_each_member_and_the_median(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = gradfit.sweep("linear", "builtin:linear", y="y", lr=[0.01, 0.1], seeds=3, init_random=True, steps=20,
                          dtype="float64")  # fmt: skip
    ax = SweepDisplay(s).plot(Figure().add_subplot())
    line = next(line for line in ax.get_lines() if "median" in line.get_label())
    want = [np.median([r["loss"] for r in s.rows if r["lr"] == lr]) for lr in (0.01, 0.1)]
    np.testing.assert_allclose(line.get_ydata(), want)
    SweepDisplay(s).save(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_a_sweep_that_stopped_early_says_its_budget_and_draws_no_empty_line():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = gradfit.sweep("linear", "builtin:linear", y="y", lr=[1e300], steps=5, dtype="float64")
    assert s.rows[0]["stop_reason"] == "diverged" and s.rows[0]["steps"] < 5
    ax = SweepDisplay(s).plot(Figure().add_subplot())
    assert ax.get_title() == "Final loss after at most 5 steps, by learning rate"
    assert ax.get_lines() == [] and [c.get_label() for c in ax.collections] == ["sgd: diverged"]

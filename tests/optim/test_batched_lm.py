"""Batched Levenberg-Marquardt (gradfit.optim.batched_lm): per group, scipy's curve_fit's answers (parameters and
standard errors to 1e-6 relative); groups of different sizes (padded rows add nothing); a failing group gets its
status and leaves the others' numbers bit for bit as they are without it; the damped solve's fallback."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit

from gradfit.optim.batched_lm import (
    CONVERGED,
    DIVERGED,
    MAX_ITERATIONS,
    SINGULAR,
    STATUS,
    TOO_FEW_ROWS,
    BatchedOptions,
    _damped_step,
    solve,
)

TIGHT = BatchedOptions(ftol=1e-14, xtol=1e-14, gtol=1e-14)


def _f(x, a, b, c):
    return a * np.exp(-b * x) + c


def _groups(sizes, seed=0):
    """Padded x, y, weights (1 real, 0 padded) for groups of decaying exponentials with noise."""
    rng = np.random.default_rng(seed)
    m = max(sizes)
    x = np.zeros((len(sizes), m))
    y = np.zeros((len(sizes), m))
    w = np.zeros((len(sizes), m))
    for g, n in enumerate(sizes):
        xs = np.linspace(0, 4, n)
        a, b, c = rng.uniform(1, 3), rng.uniform(0.3, 1.5), rng.uniform(-0.5, 0.5)
        x[g, :n], y[g, :n], w[g, :n] = xs, _f(xs, a, b, c) + rng.normal(0, 0.05, n), 1.0
        x[g, n:] = xs[-1]  # padded rows repeat a real row (finite), weight 0
    return torch.tensor(x), torch.tensor(y), torch.tensor(w)


def _evaluator(x, y, w):
    def evaluate(p, groups):
        xs, ys, ws = x[groups], y[groups], w[groups]
        a, b, c = p[:, 0:1], p[:, 1:2], p[:, 2:3]
        e = torch.exp(-b * xs)
        r = (a * e + c - ys) * ws
        J = torch.stack([e, -xs * a * e, torch.ones_like(xs)], dim=1) * ws[:, None, :]
        return r, J

    return evaluate


def _scipy(x, y, p0, sigma=None, absolute=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, cov = curve_fit(_f, x, y, p0=p0, sigma=sigma, absolute_sigma=absolute, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    return p, np.sqrt(np.diag(cov))


def test_each_group_equals_curve_fit_groups_of_different_sizes():
    sizes = [6, 25, 9, 40, 13]
    x, y, w = _groups(sizes)
    p0 = torch.tensor([[1.0, 1.0, 0.0]] * len(sizes), dtype=torch.float64)
    out = solve(_evaluator(x, y, w), p0, torch.tensor(sizes), TIGHT)
    assert (out.status == CONVERGED).all()
    for g, n in enumerate(sizes):
        p, se = _scipy(x[g, :n].numpy(), y[g, :n].numpy(), [1.0, 1.0, 0.0])
        np.testing.assert_allclose(out.params[g].numpy(), p, rtol=1e-6)
        np.testing.assert_allclose(out.stderr[g].numpy(), se, rtol=1e-6)
        resid = _f(x[g, :n].numpy(), *p) - y[g, :n].numpy()
        assert float(out.sum_squares[g]) == pytest.approx(float(resid @ resid), rel=1e-9)


def test_sigma_weights_and_absolute_sigma_equal_curve_fit():
    sizes = [12, 20]
    x, y, _ = _groups(sizes, seed=3)
    rng = np.random.default_rng(4)
    sigma = torch.tensor(rng.uniform(0.02, 0.2, x.shape))
    w = torch.zeros_like(x)
    for g, n in enumerate(sizes):
        w[g, :n] = 1 / sigma[g, :n]
    p0 = torch.tensor([[1.0, 1.0, 0.0]] * 2, dtype=torch.float64)
    for absolute in (False, True):
        out = solve(_evaluator(x, y, w), p0, torch.tensor(sizes), TIGHT, absolute_sigma=absolute)
        for g, n in enumerate(sizes):
            p, se = _scipy(x[g, :n].numpy(), y[g, :n].numpy(), [1.0, 1.0, 0.0], sigma[g, :n].numpy(), absolute)
            np.testing.assert_allclose(out.params[g].numpy(), p, rtol=1e-6)
            np.testing.assert_allclose(out.stderr[g].numpy(), se, rtol=1e-6)


def _bad_groups():
    """Three good groups, then: too few rows (2 for 3 parameters), singular (every x equal: b and a not separately
    determined), and a start whose residuals overflow (diverged)."""
    sizes = [10, 15, 30, 2, 8, 10]
    x, y, w = _groups(sizes, seed=7)
    x[4] = 1.0  # every row of group 4 at x = 1
    p0 = torch.tensor([[1.0, 1.0, 0.0]] * 6, dtype=torch.float64)
    p0[5, 1] = -1000.0  # exp(1000 x) overflows: the start is not finite
    return x, y, w, torch.tensor(sizes), p0


def test_bad_groups_get_their_status():
    x, y, w, n, p0 = _bad_groups()
    out = solve(_evaluator(x, y, w), p0, n, TIGHT)
    assert [STATUS[s] for s in out.status.tolist()] == [
        "converged",
        "converged",
        "converged",
        "too_few_rows",
        "singular",
        "diverged",
    ]
    assert out.status[3] == TOO_FEW_ROWS and out.status[4] == SINGULAR and out.status[5] == DIVERGED
    assert torch.isnan(out.stderr[3:]).all()
    assert torch.equal(out.params[3], p0[3])  # not fitted
    messages = out.messages(TIGHT)
    assert "fewer rows than parameters" in messages[3] and "singular" in messages[4] and "not finite" in messages[5]


def test_a_failing_group_changes_no_other_group_bit_for_bit():
    x, y, w, n, p0 = _bad_groups()
    both = solve(_evaluator(x, y, w), p0, n, TIGHT)
    good = [0, 1, 2]
    alone = solve(_evaluator(x[good], y[good], w[good]), p0[good], n[good], TIGHT)
    for field in ("params", "sum_squares", "iterations", "stderr", "cov", "status", "test"):
        assert torch.equal(getattr(both, field)[good], getattr(alone, field)), field


def test_groups_converged_early_are_frozen_while_others_go_on():
    # an easy group (exact data, started at the answer's neighbourhood) converges long before a hard one
    sizes = [20, 20]
    x, y, w = _groups(sizes, seed=11)
    y[0] = torch.tensor(_f(x[0].numpy(), 2.0, 0.5, 0.1))
    p0 = torch.tensor([[2.0, 0.5, 0.1], [10.0, 5.0, 3.0]], dtype=torch.float64)
    both = solve(_evaluator(x, y, w), p0, torch.tensor(sizes), TIGHT)
    first = solve(_evaluator(x[:1], y[:1], w[:1]), p0[:1], torch.tensor(sizes[:1]), TIGHT)
    assert int(both.iterations[0]) < int(both.iterations[1])
    assert torch.equal(both.params[0], first.params[0]) and torch.equal(both.iterations[0], first.iterations[0])


def test_the_iteration_budget_gives_max_iterations():
    x, y, w = _groups([20, 20], seed=2)
    p0 = torch.tensor([[10.0, 5.0, 3.0]] * 2, dtype=torch.float64)
    out = solve(_evaluator(x, y, w), p0, torch.tensor([20, 20]), BatchedOptions(ftol=1e-15, max_iterations=2))
    assert (out.status == MAX_ITERATIONS).all() and (out.iterations == 2).all()
    assert "max_iterations=2" in out.messages(BatchedOptions(max_iterations=2))[0]


def test_as_many_rows_as_parameters_gives_infinite_errors_as_curve_fit():
    x, y, w = _groups([3], seed=5)
    out = solve(_evaluator(x, y, w), torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64), torch.tensor([3]), TIGHT)
    assert out.status[0] == CONVERGED and torch.isinf(out.stderr[0]).all()


def test_a_failed_factorisation_is_retried_with_more_damping():
    # JᵀJ + λ D² with an indefinite H (as rounding can leave it) fails until λ D² outweighs it: λ = 1e-3 -> 10.
    H = torch.tensor([[[1.0, 2.5], [2.5, 1.0]], [[2.0, 0.0], [0.0, 3.0]]], dtype=torch.float64)  # eigenvalues 3.5, -1.5
    g = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    D = torch.ones(2, 2, dtype=torch.float64)
    lam = torch.full((2,), 1e-3, dtype=torch.float64)
    step, used, solved = _damped_step(H, g, D, lam)
    assert solved.all()
    assert used[0].item() == pytest.approx(10.0) and used[1].item() == 1e-3
    for i in range(2):
        expected = torch.linalg.solve(H[i] + used[i] * torch.eye(2, dtype=torch.float64), -g[i])
        torch.testing.assert_close(step[i], expected, rtol=1e-12, atol=0)
    bad = H.clone()
    bad[0, 0, 0] = float("nan")
    assert _damped_step(bad, g, D, lam)[2].tolist() == [False, True]  # never raises for one group


def test_bit_for_bit_with_many_groups_of_many_sizes():
    # Hundreds of groups converging at different iterations (so the running set is gathered, not used whole),
    # with bad groups spread among them: the good ones' numbers equal those of a run of the good ones alone.
    rng = np.random.default_rng(12)
    sizes = rng.integers(4, 40, 400).tolist()
    x, y, w = _groups(sizes, seed=13)
    bad = np.arange(0, 400, 37)
    n = torch.tensor(sizes)
    n[bad[::2]] = 2  # too few rows
    p0 = torch.tensor([[1.0, 1.0, 0.0]] * 400, dtype=torch.float64)
    p0[bad[1::2], 1] = -1000.0  # overflowing starts
    good = torch.tensor([g for g in range(400) if g not in set(bad.tolist())])
    both = solve(_evaluator(x, y, w), p0, n, TIGHT)
    alone = solve(_evaluator(x[good], y[good], w[good]), p0[good], n[good], TIGHT)
    assert (alone.status == CONVERGED).all() and len(set(alone.iterations.tolist())) > 3
    for field in ("params", "sum_squares", "iterations", "stderr", "cov"):
        assert torch.equal(getattr(both, field)[good], getattr(alone, field)), field

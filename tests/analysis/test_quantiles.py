"""The pure-Python normal and Student-t quantiles against scipy.stats and, where scipy loses digits, mpmath.

scipy's ``t.ppf`` keeps only absolute precision (~1e-16) about p = 1/2, so its relative error there grows as
|p - 1/2| shrinks (1e-8 at 1e-9 from it): within 0.05 of 1/2 the oracle is mpmath at 40 digits.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import stats

from gradfit.analysis.quantiles import normal_quantile, t_quantile

TAIL = np.logspace(-12, math.log10(0.45), 50)
PS = np.concatenate([TAIL, [0.6, 0.75, 0.9, 0.975, 0.99], 1.0 - TAIL])
DOFS = (0.3, 0.5, 0.7, 1, 1.5, 2, 2.5, 3, 4, 5, 7.3, 10, 19, 20, 21, 30, 40.5, 98, 100, 1e3, 1e4, 3e4, 1e5, 1e6, 1e7)
DOFS += (1e8, 1e9, 1e12)


def _relative_error(got: float, want: float) -> float:
    return abs(got - want) / abs(want)


def test_normal_quantile_is_scipy_norm_ppf():
    for p in np.concatenate([PS, [1e-300, 1e-100, 0.5 - 1e-12, 0.5 + 1e-12, 0.49999, 1 - 1e-16]]):
        assert _relative_error(normal_quantile(p), stats.norm.ppf(p)) < 1e-14, p


@pytest.mark.parametrize("dof", DOFS)
def test_t_quantile_is_scipy_t_ppf_away_from_the_centre(dof):
    worst = max(_relative_error(t_quantile(p, dof), stats.t.ppf(p, dof)) for p in PS)
    assert worst < 1e-12


def _mp_t_quantile(p: float, dof: float) -> float:
    """The t quantile to 40 digits: the root of the regularized incomplete beta form of the CDF."""
    with mpmath.workdps(40):
        p_, nu, half = mpmath.mpf(p), mpmath.mpf(dof), mpmath.mpf(1) / 2
        centre = half - p_ if p_ < half else p_ - half  # exact: p is within 1/4 of 1/2

        def f(s):  # P(|T| < s) / 2 - |p - 1/2|
            return mpmath.betainc(half, nu / 2, 0, s * s / (nu + s * s), regularized=True) / 2 - centre

        s = mpmath.findroot(f, mpmath.mpf(abs(float(stats.t.ppf(p, dof)))) or mpmath.mpf("1e-20"))
        return float(-s if p_ < half else s)


@pytest.mark.parametrize("dof", [0.3, 0.7, 1.5, 3, 4, 10, 30, 98, 1e4, 1e12])
def test_t_quantile_keeps_its_relative_precision_near_the_centre(dof):
    for d in (1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 0.01, 0.05, 0.1):
        for p in (0.5 - d, 0.5 + d):
            assert _relative_error(t_quantile(p, dof), _mp_t_quantile(p, dof)) < 1e-13, p


def test_closed_forms_for_one_and_two_degrees_of_freedom():
    for p in (1e-12, 0.01, 0.3, 0.7, 0.975):
        with mpmath.workdps(40):  # the Cauchy quantile and t(2)'s, with p - 1/2 exact
            p_ = mpmath.mpf(p)
            cauchy, t2 = mpmath.tan(mpmath.pi * (p_ - 0.5)), (2 * p_ - 1) / mpmath.sqrt(2 * p_ * (1 - p_))
        assert t_quantile(p, 1) == pytest.approx(float(cauchy), rel=1e-14)
        assert t_quantile(p, 2) == pytest.approx(float(t2), rel=1e-14)


def test_edge_cases_are_scipys():
    for dof in (None, math.inf):
        assert t_quantile(0.975, dof) == normal_quantile(0.975)
    for dof in (0, -3, math.nan):
        assert math.isnan(t_quantile(0.975, dof)) and np.isnan(stats.t.ppf(0.975, dof))
    for dof in (None, 5, 0.5):
        assert t_quantile(0.0, dof) == -math.inf and t_quantile(1.0, dof) == math.inf
        assert t_quantile(0.5, dof) == 0.0
        assert all(math.isnan(t_quantile(p, dof)) for p in (-0.1, 1.1, math.nan))


def test_quantiles_are_odd_about_one_half():
    for dof in (None, 0.5, 1, 2, 3.5, 98, 1e9):
        for p in (0.5 + 1e-10, 0.6, 0.975, 1 - 1e-12):
            assert t_quantile(1.0 - p, dof) == -t_quantile(p, dof)  # 1 - p is exact for p >= 1/2


@pytest.mark.parametrize("dof, p", [(0.5, 1e-100), (0.45, 1e-100), (0.05, 1e-12), (0.01, 0.01), (0.2, 1e-12)])
def test_quantiles_beyond_scipys_range_have_the_cdf_they_invert(dof, p):
    """scipy's t.ppf stops near 1e153; the CDF (mpmath, 40 digits) at the quantile is p to ~1e-13."""
    s = t_quantile(p, dof)
    with mpmath.workdps(40):
        nu = mpmath.mpf(dof)
        cdf = mpmath.betainc(nu / 2, mpmath.mpf(1) / 2, 0, nu / (nu + mpmath.mpf(s) ** 2), regularized=True) / 2
        assert abs(float((cdf - p) / p)) < 1e-12
    upper = 1.0 - p  # rounded: its own lower tail is 1 - upper, not p
    assert t_quantile(upper, dof) == (-t_quantile(1.0 - upper, dof) if upper < 1.0 else math.inf)


def test_a_quantile_beyond_the_largest_float_is_infinite():
    assert t_quantile(1e-12, 0.01) == -math.inf and t_quantile(1 - 1e-12, 0.01) == math.inf
    assert t_quantile(1e-300, 0.5) == -math.inf

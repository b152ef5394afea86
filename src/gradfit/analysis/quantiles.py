"""Normal and Student-t quantiles in pure Python, for the confidence intervals.

Why not scipy: ``scipy.special`` (``ndtri``, ``stdtrit``) costs a command-line fit of a small file
a noticeable share of its start-up, for one number. The quantiles here agree with
``scipy.stats.norm.ppf`` and ``scipy.stats.t.ppf`` to about 1e-13 relative (tests/analysis/test_quantiles.py
checks a grid of p from 1e-12 to 1 - 1e-12 and dof from 0.3 to 1e12 against scipy and mpmath).

How: an initial approximation (Acklam's for the normal, Hill's 1970 algorithm for t) refined by
Halley/Newton steps on the CDF, which is computed to full precision with ``math.erfc`` (normal) or
the regularized incomplete beta function's continued fraction (t). The residual is taken in the
tail (``F(t) - q``) or about the centre (``(1/2 - q) - (1/2 - F(t))``, both sides exact) so the
answer keeps its relative precision near ``p = 1/2`` too. Large dof ((z² + 10)/dof < 2e-3, z the normal
quantile) use the Cornish-Fisher expansion about the normal quantile, exact to rounding there.
"""

from __future__ import annotations

import math

__all__ = ["normal_quantile", "t_quantile"]

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_SQRT_PI = 0.5 * math.log(math.pi)
_EPS = 2.0**-52
_TINY = 1e-300
# Below (z² + 10)/nu = 2e-3 the Cornish-Fisher expansion's first neglected term (about (1e-4 z^10 + 1e-2) z / nu^5)
# is below rounding; there the continued fraction would converge slowly (x near 1 - 3/nu needs ~sqrt(nu) terms).
_CORNISH_FISHER = 2e-3

# Acklam's rational approximation of the normal quantile (relative error < 1.2e-9), only the start.
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def normal_quantile(p: float) -> float:
    """The standard normal quantile at ``p`` (``scipy.stats.norm.ppf``): -inf at 0, inf at 1, nan outside."""
    p = float(p)
    if not 0.0 <= p <= 1.0:  # nan too
        return math.nan
    if p in (0.0, 1.0):
        return -math.inf if p == 0.0 else math.inf
    q = min(p, 1.0 - p)  # 1 - p is exact for p >= 1/2: the lower tail q, at most 1/2
    z = _normal_lower(q)
    return z if p <= 0.5 else -z


def _normal_lower(q: float) -> float:
    """The quantile (<= 0) of a lower-tail probability ``0 < q <= 1/2``."""
    if q == 0.5:
        return 0.0
    z = _acklam(q)
    for _ in range(8):
        if q < 0.3:  # the tail: relative residual of Phi(z), and q / phi(z) without overflow for tiny q
            phi_z = 0.5 * math.erfc(-z / _SQRT2)
            u = (phi_z / q - 1.0) * math.exp(math.log(q) + 0.5 * z * z + _LOG_SQRT_2PI)
        else:  # the centre: Phi(z) - q = erf(z / sqrt 2) / 2 - (q - 1/2), q - 1/2 exact
            u = (0.5 * math.erf(z / _SQRT2) - (q - 0.5)) * math.exp(0.5 * z * z + _LOG_SQRT_2PI)
        step = u / (1.0 + 0.5 * z * u)  # Halley
        z -= step
        if abs(step) <= 4 * _EPS * abs(z):
            break
    return z


def _acklam(q: float) -> float:
    if q < 0.02425:
        r = math.sqrt(-2.0 * math.log(q))
        num = ((((_C[0] * r + _C[1]) * r + _C[2]) * r + _C[3]) * r + _C[4]) * r + _C[5]
        return num / ((((_D[0] * r + _D[1]) * r + _D[2]) * r + _D[3]) * r + 1.0)
    r = q - 0.5
    s = r * r
    num = (((((_A[0] * s + _A[1]) * s + _A[2]) * s + _A[3]) * s + _A[4]) * s + _A[5]) * r
    return num / (((((_B[0] * s + _B[1]) * s + _B[2]) * s + _B[3]) * s + _B[4]) * s + 1.0)


def t_quantile(p: float, dof: float | None) -> float:
    """The Student-t quantile at ``p`` with ``dof`` degrees of freedom (``scipy.stats.t.ppf``).

    ``dof`` None or infinite gives the normal quantile; ``dof <= 0`` or nan gives nan, as scipy does.
    """
    if dof is None or dof == math.inf:
        return normal_quantile(p)
    p, nu = float(p), float(dof)
    if not nu > 0.0 or not 0.0 <= p <= 1.0:  # nan too
        return math.nan
    if p in (0.0, 1.0):
        return -math.inf if p == 0.0 else math.inf
    if p == 0.5:
        return 0.0
    q = min(p, 1.0 - p)
    s = _t_upper(q, nu)  # |t|, for the lower tail q
    return -s if p < 0.5 else s


def _t_upper(q: float, nu: float) -> float:
    """``s >= 0`` with ``P(T <= -s) = q`` for ``0 < q < 1/2``."""
    if nu == 1.0:  # Cauchy: q = 1/2 - atan(s)/pi
        return 1.0 / math.tan(math.pi * q)
    if nu == 2.0:
        return (1.0 - 2.0 * q) / math.sqrt(2.0 * q * (1.0 - q))
    z = _normal_lower(q)
    if z * z + 10.0 < _CORNISH_FISHER * nu:
        return -_cornish_fisher(z, nu)
    s = _hill(q, nu)
    if s == math.inf:  # beyond the largest float (dof well below 1, tiny q)
        return s
    lo, hi = 0.0, math.inf  # a bracket kept by the residual's sign: Newton's step is refused when it leaves it
    log_pdf_const = _log_gamma_half_ratio(0.5 * nu) - 0.5 * math.log(nu) - _LOG_SQRT_PI
    for _ in range(200):
        r = _t_residual(s, q, nu)  # P(T <= -s) - q, decreasing in s
        if r == 0.0:
            return s
        if r > 0.0:
            lo = max(lo, s)
        else:
            hi = min(hi, s)
        pdf = math.exp(log_pdf_const - 0.5 * (nu + 1.0) * _log1p_square(s / math.sqrt(nu)))
        new = s + r / pdf if pdf > 0.0 else math.nan
        if not lo < new < hi:  # outside the bracket (or nan): bisect it, or grow it
            new = 0.5 * (lo + hi) if hi < math.inf else 2.0 * max(s, lo, 1.0)
        if abs(new - s) <= 2 * _EPS * abs(new):
            return new
        s = new
    return s


def _t_residual(s: float, q: float, nu: float) -> float:
    """``P(T <= -s) - q``, accurate relative to ``q`` in the tail and to ``1/2 - q`` near the centre."""
    r = s / math.sqrt(nu)
    # P(T <= -s) = I_x(nu/2, 1/2) / 2 with x = nu / (nu + s²); 1/2 - P = I_y(1/2, nu/2) / 2, y = 1 - x.
    log_x = -_log1p_square(r)
    log_y = -_log1p_square(1.0 / r) if r > 0.0 else -math.inf
    a, b = 0.5 * nu, 0.5
    x = math.exp(log_x)
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction for I_x(a, b) converges here
        lower = 0.5 * _beta_cf_part(a, b, x, log_x, log_y)
        centre = 0.5 - lower
    else:
        centre = 0.5 * _beta_cf_part(b, a, math.exp(log_y), log_y, log_x)
        lower = 0.5 - centre
    return lower - q if q < 0.25 else (0.5 - q) - centre


def _log1p_square(r: float) -> float:
    """``log(1 + r²)`` for ``r >= 0``, without overflow for huge ``r``."""
    return math.log1p(r * r) if r < 1e150 else 2.0 * math.log(r)


def _beta_cf_part(a: float, b: float, x: float, log_x: float, log_1mx: float) -> float:
    """The regularized incomplete beta ``I_x(a, b)`` by its continued fraction (modified Lentz), one of
    ``a``, ``b`` being 1/2: ``x^a (1-x)^b / (a B(a, b))`` times the fraction."""
    other = a if b == 0.5 else b
    log_beta = _LOG_SQRT_PI - _log_gamma_half_ratio(other)  # B(c, 1/2) = Gamma(c) sqrt(pi) / Gamma(c + 1/2)
    front = math.exp(a * log_x + b * log_1mx - log_beta) / a
    if front == 0.0:
        return 0.0
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) <= _EPS:
            break
    return front * h


def _log_gamma_half_ratio(a: float) -> float:
    """``log(Gamma(a + 1/2) / Gamma(a))``, without the cancellation of two large lgamma values for large ``a``."""
    if a < 20.0:
        return math.lgamma(a + 0.5) - math.lgamma(a)

    def stirling_tail(z: float) -> float:  # lgamma(z) - ((z - 1/2) log z - z + log sqrt(2 pi))
        w = 1.0 / (z * z)
        return (1.0 / 12.0 - w * (1.0 / 360.0 - w * (1.0 / 1260.0 - w * (1.0 / 1680.0 - w / 1188.0)))) / z

    # (a) log(a + 1/2) - (a - 1/2) log a - 1/2 = a log1p(1/(2a)) + log(a)/2 - 1/2
    return a * math.log1p(0.5 / a) - 0.5 + 0.5 * math.log(a) + stirling_tail(a + 0.5) - stirling_tail(a)


def _hill(q: float, nu: float) -> float:
    """Hill's (1970, CACM algorithm 396) approximation of ``s`` with ``P(|T| >= s) = 2q``: the start."""
    p2 = 2.0 * q
    if nu <= 0.5:  # outside the algorithm's range: the tail's power law P(T <= -s) ~ C s^-nu (inf beyond floats)
        log_c = _log_gamma_half_ratio(0.5 * nu) - 0.5 * math.log(nu * math.pi) + 0.5 * (nu - 1.0) * math.log(nu)
        log_s = (log_c - math.log(q)) / nu
        return math.inf if log_s > 709.0 else max(1.0, math.exp(log_s))
    a = 1.0 / (nu - 0.5)
    b = 48.0 / (a * a)
    c = ((20700.0 * a / b - 98.0) * a - 16.0) * a + 96.36
    d = ((94.5 / (b + c) - 3.0) / b + 1.0) * math.sqrt(a * math.pi / 2.0) * nu
    x = d * p2
    y = x ** (2.0 / nu) if x > 0 else 0.0
    if y > 0.05 + a:
        x = _normal_lower(q)
        y = x * x
        if nu < 5.0:
            c += 0.3 * (nu - 4.5) * (x + 0.6)
        c = (((0.05 * d * x - 5.0) * x - 7.0) * x - 2.0) * x + b + c
        y = (((((0.4 * y + 6.3) * y + 36.0) * y + 94.5) / c - y - 3.0) / b + 1.0) * x
        y = math.expm1(a * y * y)
    elif y > 0:
        y = ((1.0 / (((nu + 6.0) / (nu * y) - 0.089 * d - 0.822) * (nu + 2.0) * 3.0) + 0.5 / (nu + 4.0)) * y - 1.0) * (
            nu + 1.0
        ) / (nu + 2.0) + 1.0 / y
    s = math.sqrt(nu * y) if y > 0 and math.isfinite(y) else 1.0
    return s if math.isfinite(s) and s > 0 else 1.0


def _cornish_fisher(z: float, nu: float) -> float:
    """The t quantile from the normal one ``z`` by the Cornish-Fisher expansion in 1/nu (Abramowitz-Stegun 26.7.5)."""
    z2 = z * z
    g1 = (z2 + 1.0) * z / 4.0
    g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0
    g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0
    g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0
    return z + (g1 + (g2 + (g3 + g4 / nu) / nu) / nu) / nu

"""Where a one-input model's curve is drawn, and the y-range that frames it.

A curve evaluated on a few hundred evenly spaced points aliases any structure finer than their
spacing: a daily cycle in a year of hourly data (365 cycles on 400 points) turns into slow false
waves. :func:`curve_grid` starts from every data x (so the curve is exact wherever there is data)
plus an even grid (so gaps between data are drawn too), then adds midpoints where the drawn
straight segments still miss the curve by more than a fraction of the frame's height, within a
point budget. :func:`y_limits` frames the data and the final curve: a far-off starting guess is
drawn leaving the frame instead of squashing the data into a line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["BASE_POINTS", "MAX_CURVE_POINTS", "curve_grid", "leaves", "y_limits"]

#: Points of the even grid every curve starts from.
BASE_POINTS = 400
#: The most points of one curve (every one is evaluated for each parameter set drawn).
MAX_CURVE_POINTS = 20_000
#: A segment is split while its midpoint misses the curve by more than this fraction of the frame's
#: height: 1/1000 of a 4-inch axes at 100 dpi is under half a pixel.
TOLERANCE = 1e-3
ROUNDS = 12


def curve_grid(
    x_data,
    evaluate: Callable[[np.ndarray], np.ndarray],
    ylim: tuple[float, float],
    *,
    base_points: int = BASE_POINTS,
    max_points: int = MAX_CURVE_POINTS,
    tolerance: float = TOLERANCE,
) -> np.ndarray:
    """Sorted x values on which the curves drawn over ``x_data``'s range look like the model.

    Parameters
    ----------
    x_data : array-like
        The data's x (any order; non-finite values ignored). Every distinct value is kept
        (evenly thinned when there are more than half of ``max_points``).
    evaluate : callable
        ``evaluate(x)`` -> array ``(k, len(x))`` (or ``(len(x),)``): the ``k`` curves to be drawn
        at ``x`` (the final fit, the start, animation frames).
    ylim : (float, float)
        The frame's y-range: misses are measured against its height, and values are clipped to
        it (a curve far outside the frame needs no detail there).
    base_points : int
        Points of the even grid over the data's x-range.
    max_points : int
        The most points returned.
    tolerance : float
        Largest miss of a straight segment's midpoint, as a fraction of the frame's height.

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> x = np.arange(0.0, 24 * 365)                        # a year of hourly rows
    >>> grid = curve_grid(x, lambda t: np.sin(2 * np.pi * t / 24), (-1.1, 1.1))
    >>> bool(np.isin(x, grid).all()), len(grid) // 365      # every hour, and ~45 points a day
    (True, 44)
    """
    x = np.asarray(x_data, dtype=np.float64).ravel()
    x = np.unique(x[np.isfinite(x)])
    if not len(x):
        return np.zeros(0)
    lo, hi = float(x[0]), float(x[-1])
    if hi == lo:
        return np.array([lo])
    if len(x) > max_points // 2:
        x = x[np.unique(np.round(np.linspace(0, len(x) - 1, max_points // 2)).astype(np.int64))]
    grid = np.union1d(x, np.linspace(lo, hi, int(base_points)))
    y0, y1 = float(ylim[0]), float(ylim[1])
    height = (y1 - y0) or 1.0
    clip = (y0 - 0.05 * height, y1 + 0.05 * height)

    def values(at: np.ndarray) -> np.ndarray:
        v = np.asarray(evaluate(at), dtype=np.float64).reshape(-1, len(at))
        return np.clip(v, *clip)

    y = values(grid)
    for _ in range(ROUNDS):
        room = max_points - len(grid)
        if room <= 0:
            break
        mid = 0.5 * (grid[:-1] + grid[1:])
        fresh = (mid > grid[:-1]) & (mid < grid[1:])  # segments too short to split in float64 are done
        ym = values(mid)
        miss = np.abs(ym - 0.5 * (y[:, :-1] + y[:, 1:])) / height
        # NaN where a curve is not finite: nothing to draw there, nothing to refine.
        miss = np.where(np.isfinite(miss), miss, 0.0).max(axis=0)
        split = np.nonzero((miss > tolerance) & fresh)[0]
        if not len(split):
            break
        if len(split) > room:
            split = np.sort(split[np.argsort(miss[split])[::-1][:room]])
        grid = np.insert(grid, split + 1, mid[split])
        y = np.insert(y, split + 1, ym[:, split], axis=1)
    return grid


def y_limits(*arrays, pad: float = 0.05) -> tuple[float, float]:
    """A y-range holding every finite value of ``arrays`` (the data, the final curve), padded.

    Curves left out (a starting guess, early frames) are drawn clipped at the frame.
    """
    values = [np.asarray(a, dtype=np.float64).ravel() for a in arrays if a is not None]
    v = np.concatenate(values) if values else np.zeros(0)
    v = v[np.isfinite(v)]
    if not len(v):
        return -1.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    span = (hi - lo) or max(abs(lo), 1.0) * 0.1
    return lo - pad * span, hi + pad * span


def leaves(values, ylim: tuple[float, float]) -> bool:
    """True when some finite value of ``values`` lies outside ``ylim`` (the curve leaves the frame)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return bool(len(v)) and bool((v < ylim[0]).any() or (v > ylim[1]).any())

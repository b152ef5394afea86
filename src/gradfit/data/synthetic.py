"""The seed tutorials' datasets, reproducible from a seed.

Each function follows its tutorial's recipe exactly, draws only from its own
``torch.Generator`` (the global RNG is never touched) and returns a new
``pandas.DataFrame``. Everything is vectorised: ``linear(10**7)`` takes well
under a second.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import pandas as pd
import torch

from gradfit.aliases import closest
from gradfit.errors import ConfigError, DataError
from gradfit.seeds import generator

__all__ = ["BUILTIN", "blobs", "linear", "load_builtin", "rollercoaster", "wells"]


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"The '{name}' parameter must be an integer >= {minimum}. Got {value!r} instead.")
    return value


def _check_size(name: str, n: int, bytes_per_row: int) -> None:
    """Refuse, before drawing anything, a table that the memory budget cannot hold (see gradfit.memory)."""
    from gradfit.memory import budget, require

    if n * bytes_per_row <= budget().nbytes:
        return
    most = int(budget().nbytes // bytes_per_row)
    require(
        [(f"{n:,} rows while they are drawn", n * bytes_per_row)],
        f"the built-in dataset '{name}' with n={n:,}",
        f"Use fewer rows: at most n={most:,} can be drawn within the budget.",
    )


def _generator(seed) -> torch.Generator:
    return generator(seed)  # the seed rule of gradfit.seeds: 0 to 2**64 - 1


def linear(n: int = 100, seed: int = 0) -> pd.DataFrame:
    """Points scattered above the line ``y = 3 x + 2`` (seeds 000 and 001).

    The noise is uniform in ``[0, 1)``, so the best least-squares line is
    ``y = 3 x + 2.5``.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    seed : int
        Seed of the private ``torch.Generator``.

    Returns
    -------
    pandas.DataFrame
        float32 columns ``x`` (uniform in ``[-1, 1)``) and ``y``.

    Examples
    --------
    >>> df = linear(5, seed=1)
    >>> list(df.columns), len(df)
    (['x', 'y'], 5)
    """
    n = _check_int("n", n, 1)
    g = _generator(seed)
    _check_size("linear", n, 24)  # measured peak: 20.5 bytes a row (float32 x, y and their temporaries)
    X = torch.ones(n, 2)
    X[:, 0].uniform_(-1.0, 1.0, generator=g)
    y = X @ torch.tensor([3.0, 2.0]) + torch.rand(n, generator=g)
    # copy=False: the arrays are fresh and owned by the frame alone
    return pd.DataFrame({"x": X[:, 0].numpy().copy(), "y": y.numpy()}, copy=False)


def rollercoaster(seed: int = 0) -> pd.DataFrame:
    """The speed of a roller coaster over 20 seconds: a noisy parabola (seed 002).

    ``speed = 3 * N(0, 1) + 0.75 (t - 9.5)^2 + 1`` for ``t = 0, 1, ..., 19``.

    Parameters
    ----------
    seed : int
        Seed of the private ``torch.Generator``.

    Returns
    -------
    pandas.DataFrame
        float32 columns ``t`` and ``speed``, 20 rows.

    Examples
    --------
    >>> rollercoaster()["t"].tolist()[:3]
    [0.0, 1.0, 2.0]
    """
    g = _generator(seed)
    t = torch.arange(0, 20).float()
    speed = torch.randn(20, generator=g) * 3 + 0.75 * (t - 9.5) ** 2 + 1
    return pd.DataFrame({"t": t.numpy(), "speed": speed.numpy()}, copy=False)


def blobs(n: int = 200, n_classes: int = 2, seed: int = 0, spread: float = 0.5) -> pd.DataFrame:
    """Gaussian clusters with centres evenly spaced on a circle of radius 3.

    Row ``i`` belongs to class ``i % n_classes``; class ``k`` is centred at
    ``3 (cos 2 pi k / n_classes, sin 2 pi k / n_classes)`` with standard
    deviation ``spread`` in each direction. With the defaults the two classes
    sit 12 standard deviations apart, so they are linearly separable.

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    n_classes : int
        Number of clusters (>= 1).
    seed : int
        Seed of the private ``torch.Generator``.
    spread : float
        Standard deviation of each cluster (>= 0).

    Returns
    -------
    pandas.DataFrame
        float32 columns ``x1``, ``x2`` and an int64 column ``label`` in ``0..n_classes-1``.

    Examples
    --------
    >>> sorted(blobs(10, n_classes=3)["label"].unique().tolist())
    [0, 1, 2]
    """
    n = _check_int("n", n, 1)
    n_classes = _check_int("n_classes", n_classes, 1)
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not spread >= 0 or math.isinf(spread):
        raise ConfigError(f"The 'spread' parameter must be a finite number >= 0. Got {spread!r} instead.")
    g = _generator(seed)
    _check_size("blobs", n, 40)  # measured peak: 32.8 bytes a row (int64 labels, float32 points, temporaries)
    label = torch.arange(n) % n_classes
    angle = torch.arange(n_classes, dtype=torch.float64) * (2 * math.pi / n_classes)
    centres = (3.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)).float()
    points = centres[label] + float(spread) * torch.randn(n, 2, generator=g)
    return pd.DataFrame(
        {"x1": points[:, 0].numpy().copy(), "x2": points[:, 1].numpy().copy(), "label": label.numpy()},
        copy=False,
    )


#: The truth of :func:`wells`: each well's ``a``, ``b`` and ``c`` are drawn uniformly from these ranges.
WELL_RANGES = {"a": (2.0, 4.0), "b": (0.2, 0.8), "c": (0.5, 1.5)}
#: The standard deviation of :func:`wells`' noise.
WELL_NOISE = 0.05


def wells(groups: int = 12, n: int = 25, seed: int = 0) -> pd.DataFrame:
    """One decay curve per well, for one fit per group (``--group well``): ``y = a exp(-b x) + c`` plus noise.

    Each well's ``a``, ``b`` and ``c`` are drawn from :data:`WELL_RANGES`; its ``n`` points have ``x`` evenly
    spaced over ``[0, 10]`` and Gaussian noise of standard deviation :data:`WELL_NOISE`. The truth is in the
    columns ``a_true``, ``b_true`` and ``c_true`` (the same on every row of a well), to compare a fit with.

    Parameters
    ----------
    groups : int
        Number of wells (>= 1).
    n : int
        Points per well (>= 1).
    seed : int
        Seed of the private ``torch.Generator``.

    Returns
    -------
    pandas.DataFrame
        Columns ``well`` (``"W01"``, ``"W02"``, ...), ``x``, ``y`` (float64) and ``a_true``, ``b_true``, ``c_true``.

    Examples
    --------
    >>> df = wells(groups=3, n=4)
    >>> df["well"].unique().tolist(), len(df)
    (['W01', 'W02', 'W03'], 12)
    """
    groups = _check_int("groups", groups, 1)
    n = _check_int("n", n, 1)
    _check_size("wells", groups * n, 120)  # seven float64 columns and a name, with temporaries
    g = _generator(seed)
    truth = {
        k: low + (high - low) * torch.rand(groups, 1, generator=g, dtype=torch.float64)
        for k, (low, high) in WELL_RANGES.items()
    }
    x = torch.linspace(0.0, 10.0, n, dtype=torch.float64).expand(groups, n)
    noise = WELL_NOISE * torch.randn(groups, n, generator=g, dtype=torch.float64)
    y = truth["a"] * torch.exp(-truth["b"] * x) + truth["c"] + noise
    width = len(str(groups))
    names = [f"W{k + 1:0{max(2, width)}d}" for k in range(groups)]
    table = {"well": [name for name in names for _ in range(n)], "x": x.reshape(-1).numpy().copy()}
    table["y"] = y.reshape(-1).numpy()
    table.update({f"{k}_true": v.expand(groups, n).reshape(-1).numpy().copy() for k, v in truth.items()})
    return pd.DataFrame(table, copy=False)


BUILTIN: dict[str, Callable[..., pd.DataFrame]] = {
    "linear": linear,
    "rollercoaster": rollercoaster,
    "blobs": blobs,
    "wells": wells,
}


def load_builtin(name: str, **kwargs) -> pd.DataFrame:
    """One of the built-in datasets by name.

    Parameters
    ----------
    name : str
        A key of ``BUILTIN``: ``"linear"``, ``"rollercoaster"``, ``"blobs"`` or ``"wells"``.
    **kwargs
        Passed to the dataset's function (``n``, ``seed``, ...).

    Raises
    ------
    DataError
        For an unknown name or a parameter the dataset does not take.

    Examples
    --------
    >>> len(load_builtin("linear", n=7))
    7
    """
    if name not in BUILTIN:
        close = closest(name, list(BUILTIN))
        hint = f" Did you mean '{close}'?" if close else ""
        raise DataError(f"Unknown built-in dataset {name!r}. Known names: {', '.join(sorted(BUILTIN))}.{hint}")
    func = BUILTIN[name]
    accepted = list(inspect.signature(func).parameters)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise DataError(
            f"The built-in dataset '{name}' does not take {', '.join(map(repr, unknown))}. "
            f"It takes: {', '.join(accepted)}."
        )
    return func(**kwargs)

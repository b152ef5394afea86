"""The loss landscape: the exact mean loss on a grid over two parameters, with the fit's path.

Two flat parameters (``"a[0]"``, ``"b"``) vary over a grid; every other parameter is held at
its fitted value. The loss at every grid point is the exact mean over all the run's rows,
evaluated in float64 in one vectorised pass (``torch.func.vmap`` over the model's pure forward
and the loss), chunked over grid points and rows so memory stays bounded whatever the data size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import vmap

from gradfit import rowpass
from gradfit.aliases import closest
from gradfit.analysis.fitted_data import chunk_size_of, run_data
from gradfit.errors import ConfigError, ModelError
from gradfit.losses import MSE, get_loss
from gradfit.memory import require
from gradfit.problem import unflatten
from gradfit.rowpass import MemoryRows, reduce
from gradfit.train.linear_stats import LinearStats

__all__ = ["Landscape", "compute_landscape", "covering_span", "grid_span", "pick_params"]

# Floats held at once per chunk (grid points x rows): ~160 MB of float64 predictions.
_BUDGET = 20_000_000
# Beyond this many parameters the grid is not taken from sufficient statistics (p x p float64).
_STATS_PARAMS = 2_000


@dataclass(frozen=True, eq=False)
class Landscape:
    """The loss on a grid over two parameters, and the fit's path through it.

    Attributes
    ----------
    names : tuple of (str, str)
        The flat parameter names on the x and y axes.
    a, b : ndarray, shapes (na,) and (nb,)
        Grid values of ``names[0]`` and ``names[1]``.
    loss : ndarray, shape (nb, na)
        ``loss[j, i]`` is the mean loss at ``(a[i], b[j])`` (the layout ``contour(a, b, loss)`` wants).
    path : ndarray, shape (m, 2)
        The two parameters at every kept history snapshot.
    path_steps : ndarray of int, shape (m,)
        The steps of those snapshots.
    held : dict of str to float
        Every other flat parameter, at the final value it was held at.
    loss_name : str
        The loss that was evaluated (``"mse"``...).
    optimizer : str
        The optimizer of the fit whose path this is (``"lm"``: the path's steps are iterations).
    """

    names: tuple[str, str]
    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    path: np.ndarray
    path_steps: np.ndarray
    held: dict[str, float]
    loss_name: str
    optimizer: str = ""

    def minimum(self) -> tuple[float, float, float]:
        """``(a, b, loss)`` at the grid's lowest (finite) point."""
        finite = np.where(np.isfinite(self.loss), self.loss, np.inf)
        j, i = np.unravel_index(int(np.argmin(finite)), finite.shape)
        return float(self.a[i]), float(self.b[j]), float(self.loss[j, i])


def compute_landscape(
    result,
    data=None,
    params: tuple[str, str] | None = None,
    n: int | tuple[int, int] = 101,
    span: tuple[tuple[float, float], tuple[float, float]] | None = None,
    chunk_rows: int | None = None,
    loss=None,
    *,
    chunk_size: int | None = None,
) -> Landscape:
    """The exact mean loss of ``result``'s model on a grid over two parameters.

    Parameters
    ----------
    result : FitResult
    data : optional
        The fit's data, when it was given in memory (see :func:`gradfit.analysis.fitted_data.run_data`).
    params : (str, str), optional
        Flat parameter names for the x and y axes; default the first two free ones.
    n : int or (int, int), default 101
        Grid points along each axis (>= 2).
    span : ((lo, hi), (lo, hi)), optional
        The grid's ranges. Default: the path and the final point, plus 20% each side (and at
        least 10% of the value, or 0.1).
    chunk_rows : int, optional
        The former name of ``chunk_size``, still accepted.
    loss : str, callable or Loss, optional
        The loss to evaluate; default the fit's own (needed when the fit used a callable loss
        and was reloaded from JSON).
    chunk_size : int, optional
        Rows evaluated at once; default the fit's own (``result.config["chunk_size"]``, else
        :data:`gradfit.rowpass.CHUNK_ROWS`).

    Returns
    -------
    Landscape

    Examples
    --------
    >>> import gradfit
    >>> r = gradfit.fit("linear", "builtin:linear", y="y", lr=0.1, steps=100)
    >>> land = compute_landscape(r, n=51)
    >>> land.loss.shape, land.names
    ((51, 51), ('a[0]', 'a[1]'))
    """
    model = _model(result)
    names = pick_params(result, params)
    na, nb = _grid_size(n)
    # The grid's losses, their float64 copies for drawing, and a chunk of predictions (_BUDGET numbers).
    require(
        [(f"the loss at {na:,} x {nb:,} grid points", 3 * 8.0 * na * nb), ("a chunk of predictions", 8.0 * _BUDGET)],
        "the loss landscape",
        "Use fewer grid points (n=...).",
    )
    chunk_rows = _chunk_rows(result, chunk_rows, chunk_size)
    loss_fn = _loss(result, loss)
    final = result.flat_params
    path, steps = path_of(result, names)
    if span is not None:
        _check_span(span)
    (alo, ahi), (blo, bhi) = span if span is not None else grid_span([path], [final[k] for k in names])
    a = np.linspace(alo, ahi, na)
    b = np.linspace(blo, bhi, nb)

    ds = run_data(result, data, weighted=True)
    assert ds.y is not None  # run_data reads the fit's target column (result.data["y"]): a fit has one
    x, y = ds.x.to(torch.float64), ds.y.to(torch.float64)
    w = None if ds.w is None else ds.w.to(torch.float64)  # a weighted fit's loss is Σ wᵢℓᵢ / Σ wᵢ
    flat_names = model.flat_names()
    base = torch.tensor([final[k] for k in flat_names], dtype=torch.float64)
    cols = [flat_names.index(k) for k in names]
    bb, aa = np.meshgrid(b, a, indexing="ij")
    points = torch.as_tensor(np.stack([aa.ravel(), bb.ravel()], axis=1))
    values = _grid_loss(model, loss_fn, base, cols, points, x, y, chunk_rows, w=w)
    held = {k: final[k] for k in flat_names if k not in names}
    return Landscape(
        names=names,
        a=a,
        b=b,
        loss=values.reshape(nb, na),
        path=path,
        path_steps=steps,
        held=held,
        loss_name=str(getattr(loss_fn, "name", "loss")),
        optimizer=str(result.config.get("optimizer") or ""),
    )


def pick_params(result, params: Sequence[str] | None = None) -> tuple[str, str]:
    """The two flat parameter names to vary: checked ``params``, else the first two free ones."""
    return landscape_pair(_model(result), result.fixed, params)


def landscape_pair(model, fixed=(), params: Sequence[str] | None = None) -> tuple[str, str]:
    """:func:`pick_params` for a model and its fixed parameters, before any fit (the CLI checks
    ``--landscape`` with it at the door)."""
    flat = model.flat_names()
    if len(flat) < 2:
        raise ModelError(
            f"A loss landscape needs a model with at least two parameters; {model.name!r} has "
            f"{len(flat)} ({', '.join(flat) or 'none'})."
        )
    if params is None:
        fixed = set(fixed)
        free = [k for s in model.specs if s.name not in fixed for k in s.flat_names()]
        return tuple((free + [k for k in flat if k not in free])[:2])
    params = (params,) if isinstance(params, str) else tuple(params)
    params = tuple(model.flat_key(p) if isinstance(p, str) else p for p in params)  # a[0] -> a[bmi]
    if len(params) != 2 or params[0] == params[1]:
        raise ModelError(
            f"The 'params' parameter must name two different parameters, e.g. {tuple(flat[:2])}. "
            f"Got {params!r} instead."
        )
    for p in params:
        if p not in flat:
            close = closest(str(p), flat)
            hint = f" Did you mean {close!r}?" if close else ""
            shown = ", ".join(flat[:12]) + (", ..." if len(flat) > 12 else "")
            raise ModelError(f"The model {model.name!r} has no parameter {p!r}.{hint} Its parameters are: {shown}.")
    return params


def path_of(result, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The history snapshots of two flat parameters, ``(m, 2)``, and their steps."""
    hist = result.history
    cols = [hist.param_names.index(k) for k in names] if all(k in hist.param_names for k in names) else None
    if cols is None or len(hist.snapshot_steps) == 0:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.asarray(hist.snapshots[:, cols], dtype=np.float64).copy(), np.asarray(
        hist.snapshot_steps, np.int64
    ).copy()


def grid_span(
    paths: Sequence[np.ndarray], extra=None, margin: float = 0.2
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Ranges covering every finite point of ``paths`` (and the ``extra`` point), with a margin.

    The margin is ``margin`` times the width each side, and at least 10% of the largest
    magnitude (or 0.1) so a path that barely moves still gets a readable neighbourhood.
    """
    pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in paths]
    if extra is not None:
        pts.append(np.asarray(extra, dtype=np.float64).reshape(1, 2))
    allp = np.concatenate(pts) if pts else np.zeros((0, 2))
    out = []
    for k in range(2):
        v = allp[:, k][np.isfinite(allp[:, k])]
        if not len(v):
            v = np.zeros(1)
        lo, hi = float(v.min()), float(v.max())
        pad = max(margin * (hi - lo), 0.1 * max(abs(lo), abs(hi)), 0.1)
        out.append((lo - pad, hi + pad))
    return out[0], out[1]


def covering_span(
    paths: Sequence[np.ndarray], keep: Sequence[int], extra: Sequence = (), margin: float = 0.2, reach: float = 10.0
) -> tuple[tuple[tuple[float, float], tuple[float, float]], list[int]]:
    """A grid span covering every path it can: the ``keep`` paths (and ``extra`` points) always, any other
    path whole unless covering it would make either range more than ``reach`` times wider.

    A race's runs that descended are kept; one that overshot or wandered is covered too, so its
    path is drawn on the landscape; one that blew up (to 1e30, or to NaN) is left out, since
    covering it would shrink every other path to a dot.

    Returns
    -------
    span : ((lo, hi), (lo, hi))
        As :func:`grid_span`.
    covered : list of int
        The indices of the paths the span covers whole, in order.

    Examples
    --------
    >>> near, far = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 0.0], [1e6, -1e6]])
    >>> wide = np.array([[0.0, 0.0], [2.0, -1.0]])
    >>> span, covered = covering_span([near, far, wide], keep=[0])
    >>> covered, span[0][1] >= 2.0, span[1][0] <= -1.0
    ([0, 2], True, True)
    """
    paths = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in paths]
    extra = [np.asarray(e, dtype=np.float64).reshape(-1, 2) for e in extra]
    covered = sorted(set(int(i) for i in keep))
    base = grid_span([paths[i] for i in covered] + extra, margin=margin)
    limit = [reach * (hi - lo) for lo, hi in base]
    for i, path in enumerate(paths):
        if i in covered or not len(path) or not np.isfinite(path).all():
            continue
        trial = grid_span([paths[j] for j in covered] + [path] + extra, margin=margin)
        if all(hi - lo <= w for (lo, hi), w in zip(trial, limit)):
            covered.append(i)
    covered.sort()
    return grid_span([paths[i] for i in covered] + extra, margin=margin), covered


def loss_on_grid(model, loss_fn, base: torch.Tensor, names: Sequence[str], a, b, x, y, w=None, chunk_size=None):
    """The exact mean loss of ``model`` at every point of the grid ``a`` x ``b`` over the flat parameters
    ``names`` (two), every other parameter held at its value in ``base`` (float64, in ``model.flat_names()``
    order): an array of shape ``(len(b), len(a))``. For a grid at parameters a fit has not reached yet (the
    playground's landscape, drawn while the fit runs); :func:`compute_landscape` draws a finished fit's."""
    flat_names = model.flat_names()
    cols = [flat_names.index(k) for k in names]
    bb, aa = np.meshgrid(np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64), indexing="ij")
    points = torch.as_tensor(np.stack([aa.ravel(), bb.ravel()], axis=1))
    rows = rowpass.chunk_rows(chunk_size)
    values = _grid_loss(model, loss_fn, base.to(torch.float64), cols, points, x, y, rows, w=w)
    return values.reshape(len(b), len(a))


def _grid_loss(model, loss_fn, base, cols, points, x, y, chunk_rows, w=None, statistics=True) -> np.ndarray:
    """Mean loss at every grid point: vmap over points, chunked over points and rows (from the sufficient statistics
    instead, when ``statistics`` and the model is linear in its parameters under the mse)."""
    fast = _grid_loss_by_statistics(model, loss_fn, base, cols, points, x, y, chunk_rows, w) if statistics else None
    if fast is not None:
        return fast
    specs = model.specs
    n_rows = x.shape[0]
    rows = min(n_rows, chunk_rows)
    per_chunk = max(1, _BUDGET // max(1, rows * max(1, model.n_outputs)))

    def total(p, xc, yc):
        return loss_fn.total(model(p, xc), yc).to(torch.float64)

    def weighted(p, xc, yc, wc):
        return loss_fn.total(model(p, xc), yc, wc).to(torch.float64)

    batched = vmap(total, in_dims=(0, None, None)) if w is None else vmap(weighted, in_dims=(0, None, None, None))
    out = torch.empty(points.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for g0 in range(0, points.shape[0], per_chunk):
            pts = points[g0 : g0 + per_chunk]
            flat = base.expand(pts.shape[0], -1).clone()
            flat[:, cols] = pts
            batch, offset = {}, 0
            for s in specs:
                batch[s.name] = flat[:, offset : offset + s.size].reshape((pts.shape[0],) + tuple(s.shape))
                offset += s.size
            acc = reduce(
                lambda xc, yc, wc: batched(batch, xc, yc, *(() if wc is None else (wc,))), MemoryRows(x, y, w, rows)
            )
            out[g0 : g0 + per_chunk] = acc / (n_rows if w is None else float(w.sum()))
    return out.numpy()


def _grid_loss_by_statistics(model, loss_fn, base, cols, points, x, y, chunk_rows, w) -> np.ndarray | None:
    """The grid's losses from :class:`gradfit.train.linear_stats.LinearStats` over every parameter (a pass of the
    Jacobian, then O(p²) per point), or None where they do not apply or do not reproduce the first point's loss."""
    p = base.numel()
    if type(loss_fn) is not MSE or model.n_outputs != 1 or not 0 < p <= _STATS_PARAMS or points.shape[0] <= p + 7:
        return None
    stats = LinearStats.build(model, x, y, w, unflatten(model.specs, base), (), chunk_rows)
    if stats is None:
        return None
    out = torch.empty(points.shape[0], dtype=torch.float64)
    per_chunk = max(1, _BUDGET // p)
    for g0 in range(0, points.shape[0], per_chunk):
        flat = base.expand(len(points[g0 : g0 + per_chunk]), -1).clone()
        flat[:, cols] = points[g0 : g0 + per_chunk].to(flat)
        out[g0 : g0 + per_chunk] = stats.values(flat).cpu()
    rows = _grid_loss(model, loss_fn, base, cols, points[:1], x, y, chunk_rows, w, statistics=False)
    return out.numpy() if abs(float(out[0]) - float(rows[0])) <= 1e-9 * abs(float(rows[0])) else None


def _chunk_rows(result, chunk_rows: int | None, chunk_size: int | None) -> int:
    """The rows per chunk: ``chunk_size`` or its former name ``chunk_rows`` (checked), else the fit's."""
    if chunk_rows is not None and chunk_size is not None and chunk_rows != chunk_size:
        raise ConfigError(
            f"The 'chunk_rows' parameter is the former name of 'chunk_size': give one of them. Got "
            f"chunk_rows={chunk_rows!r} and chunk_size={chunk_size!r}."
        )
    given, name = (chunk_size, "chunk_size") if chunk_size is not None else (chunk_rows, "chunk_rows")
    if given is not None and (not isinstance(given, int) or isinstance(given, bool) or given < 1):
        raise ConfigError(f"The '{name}' parameter must be a whole number >= 1. Got {given!r} instead.")
    return rowpass.chunk_rows(chunk_size_of(result, given))


def _model(result):
    if getattr(result, "model", None) is None:
        raise ModelError(
            "This result has no model to evaluate (it was loaded from JSON with a callable or nn.Module "
            "model): pass model=... to FitResult.from_json first."
        )
    return result.model


def _loss(result, loss):
    if loss is not None:
        return get_loss(loss)
    name = result.config.get("loss", "mse")
    try:
        return get_loss(name, **dict(result.config.get("loss_options") or {}))
    except ConfigError:
        raise ConfigError(
            f"The fit's loss {name!r} cannot be rebuilt from its name (a function, probably): "
            f"pass it again with loss=..."
        ) from None


def _grid_size(n) -> tuple[int, int]:
    pair = (n, n) if not isinstance(n, (tuple, list)) else tuple(n)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2 for v in pair):
        raise ConfigError(f"The 'n' parameter must be a whole number >= 2 (or a pair of them). Got {n!r} instead.")
    return int(pair[0]), int(pair[1])


def _check_span(span) -> None:
    try:
        ok = len(span) == 2 and all(
            len(r) == 2 and all(math.isfinite(float(v)) for v in r) and float(r[0]) < float(r[1]) for r in span
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"The 'span' parameter must be ((lo, hi), (lo, hi)) with finite lo < hi for each axis. "
            f"Got {span!r} instead."
        )

"""Sufficient statistics: the mean squared error of a model linear in its free parameters, in O(p²) per step.

When ``f(x; θ) = f(x; 0) + J θ`` with a Jacobian ``J`` that does not depend on ``θ`` (zoo ``linear``, ``polyN``,
formulas such as ``a*sin(x) + b*x**2 + c``), the weighted mse is a quadratic in ``θ``::

    loss(θ) = (c - 2 dᵀg + dᵀ A d) / n,   d = θ - θ*,   A = JᵀWJ,   g = JᵀW r*,   c = r*ᵀW r*,   r* = y - f(θ*)

with ``n`` the row count (the sum of the weights when weighted). Two float64 passes over the rows build it:
the first takes ``J`` chunk by chunk (``A`` and ``JᵀW(y - f(0))``) and solves for the least-squares optimum
``θ*``; the second takes the residuals there (``c`` and ``g``). Centred at the optimum, ``g`` is nearly zero and
the loss is a sum of non-negative terms, so it does not cancel when the fit is good. Every later loss and
gradient costs O(p²), whatever the number of rows.

Linearity is checked, not assumed: the Jacobian at the start and at a perturbed point must agree on probe rows,
and the first pass checks on every row that the predictions at a second point equal ``f(0) + J θ``. The
statistics depend on the data and the fixed parameters only (not on the start), so a resumed fit builds the
same ones. :func:`gradfit.train.paths.prepare_paths` decides when they are used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from gradfit.problem import ParamView, pack
from gradfit.rowpass import RowSet, jacobian_rows, reduce, row_count, rows_device, rows_dtype, rows_of

__all__ = ["LinearStats"]

CHECK_ROWS = 512  # rows of the Jacobian probe (as analysis/optimum.py and train/scaling.py)
#: Free entries up to which the per-step arithmetic is done in Python floats (on the CPU).
HOST_PARAMS = 8
RTOL = 1e-6  # linearity: Jacobians, and predictions against f(0) + J θ, agree to this (relative)


class LinearStats:
    """The statistics of one dataset's rows for a model linear in its free parameters under the (weighted) mse.

    Implements :class:`gradfit.train.objective.BoundPath`; build it with :meth:`build`, which returns None when
    the model is not linear on these rows.

    Attributes
    ----------
    A, g, c : Tensor
        ``JᵀWJ`` (p x p), ``JᵀW r*`` and ``r*ᵀW r*`` at ``theta`` (float64).
    theta : Tensor
        The centre ``θ*``: the least-squares optimum as solved from the first pass (float64, free entries).
    count : float
        What the sums are divided by (row count or total weight), times the loss's ``factor``.
    """

    name = "sufficient_statistics"

    def __init__(self, data: tuple, names: Sequence[str], A: Tensor, g: Tensor, c: Tensor, theta: Tensor, count):
        self.x, self.y, self.w = data
        self._versions = _versions(data)
        self.names = list(names)  # the free parameters, in the order of theta's entries
        self.A, self.g, self.c, self.theta = A, g, c, theta
        self.count = float(count)
        # The row pass sums a float32 fit's squares in float32: beyond its range its loss is inf, and so is this one's.
        dtype = rows_dtype(self.x)
        self.overflow = torch.finfo(dtype).max if dtype != torch.float64 else float("inf")
        # A few parameters on the CPU: the O(p²) arithmetic in Python floats (IEEE doubles, as float64 tensors)
        # costs less than the dozen tensor operations it replaces, which is most of a small fit's step.
        self.host = theta.numel() <= HOST_PARAMS and theta.device.type == "cpu"
        if self.host:
            self._A, self._g, self._c = A.tolist(), g.tolist(), float(c)
            self._centre = theta.tolist()

    @classmethod
    def build(
        cls,
        model,
        x: Tensor | RowSet,
        y: Tensor | None,
        w: Tensor | None,
        params,
        fixed,
        chunk_size=None,
        factor: float = 1.0,
    ) -> LinearStats | None:
        """The statistics of the rows ``(x, y, w)``, or None when the model is not linear in its free parameters.

        Parameters
        ----------
        model : Model
            One output per row.
        x, y, w : Tensor
            The rows (``w`` None when unweighted); bound by identity, so later calls must pass these tensors. ``x``
            may be a :class:`gradfit.rowpass.RowSet` (``y`` and ``w`` None), whose rows are then read twice.
        params : mapping of str to Tensor
            The start (its fixed entries are kept; the free ones only set the linearity probe).
        fixed : iterable of str
            Parameters held at their values.
        chunk_size : int, optional
            The fit's chunk size (the Jacobian's chunks are smaller when ``p`` is large).
        factor : float
            The loss is the mse divided by it (1; ``var(y)`` under scaling's dimensionless loss).
        """
        view = ParamView.of(model, params, fixed, torch.float64, rows_device(x))
        start = view.theta
        p = start.numel()
        head = x[:CHECK_ROWS] if isinstance(x, Tensor) else next(iter(rows_of(x, chunk_size=CHECK_ROWS).chunks()))[0]
        if p == 0 or not _probe_linear(view, start, head.double()):
            return None
        zero = torch.zeros_like(start)
        other = _perturbed(start)
        rows = rows_of(x, y, w, jacobian_rows(p, chunk_size=chunk_size), dtype=torch.float64)

        def first(xc, yc, wc):
            J = view.jacobian(zero, xc)
            with torch.no_grad():
                f0 = view.predict(zero, xc).reshape(-1)
                f1 = view.predict(other, xc).reshape(-1)
            off = (f1 - f0 - J @ other).abs() - RTOL * (f0.abs() + J.abs() @ other.abs() + f1.abs())
            Jw = J if wc is None else wc[:, None] * J
            bad = (~torch.isfinite(off)) | (off > 0)
            return Jw.T @ J, Jw.T @ (yc.reshape(-1) - f0), bad.sum()

        try:
            A, b, bad = reduce(first, rows)
        except (RuntimeError, TypeError, ValueError):  # a forward that refuses the point 0: no statistics
            return None
        if bool(bad > 0) or not bool(torch.isfinite(A).all() and torch.isfinite(b).all()):
            return None
        theta = _solve(A, b)

        def second(xc, yc, wc):
            with torch.enable_grad():
                t = theta.clone().requires_grad_(True)
                pred = view.predict(t, xc).reshape(-1)
                r = yc.reshape(-1) - pred.detach()
                rw = r if wc is None else wc * r
                (grad,) = torch.autograd.grad(pred, t, grad_outputs=rw, allow_unused=True)
            return (torch.zeros_like(theta) if grad is None else grad), (rw * r).sum()

        g, c = reduce(second, rows_of(x, y, w, chunk_size, dtype=torch.float64))
        if not bool(torch.isfinite(g).all() and torch.isfinite(c)):
            return None
        names = [s.name for s in model.specs if s.name not in frozenset(fixed)]
        return cls((x, y, w), names, A, g, c, theta, row_count(x, w) * float(factor))

    def serves(self, x: Tensor | RowSet, y: Tensor | None, w: Tensor | None) -> bool:
        """True for the very tensors it was built from, unchanged since (their in-place version counters)."""
        return x is self.x and y is self.y and w is self.w and _versions((x, y, w)) == self._versions

    def _theta(self, params: Mapping[str, Tensor]) -> Tensor:
        return pack(params, self.names, torch.float64, self.theta.device, detach=True)

    def _sums(self, params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        d = self._theta(params) - self.theta
        Ad = self.A @ d
        # c - 2dᵀg + dᵀAd, each term non-negative near the optimum, where g is ~0.
        total = self.c + d @ (Ad - 2 * self.g)
        if self.overflow < float("inf"):  # no host sync: a GPU fit's step need not wait for it
            total = torch.where(total > self.overflow, torch.full_like(total, float("inf")), total)
        return total / self.count, Ad - self.g

    def _host_sums(self, params: Mapping[str, Tensor]) -> tuple[float, list[float]]:
        """:meth:`_sums` in Python floats (``host``): the mean loss and ``A d - g``."""
        return self.host_sums(_entries(params, self.names))

    def host_sums(self, entries: Sequence[float]) -> tuple[float, list[float]]:
        """The mean loss and ``A d - g`` at the free entries ``entries`` (in :attr:`names` order, row-major within
        each), in Python floats (``host`` only): a block of steps (gradfit.train.host_steps) calls it per step."""
        d = [v - t for v, t in zip(entries, self._centre)]
        Ad = [sum(a * e for a, e in zip(row, d)) for row in self._A]
        total = self._c + sum(e * (a - 2.0 * g) for e, a, g in zip(d, Ad, self._g))
        if total > self.overflow:
            total = math.inf
        return total / self.count, [a - g for a, g in zip(Ad, self._g)]

    def value(self, params: Mapping[str, Tensor]) -> Tensor:
        """The mean loss at ``params`` as a float64 scalar tensor."""
        if self.host:
            return torch.tensor(self._host_sums(params)[0], dtype=torch.float64)
        return self._sums(params)[0]

    def values(self, thetas: Tensor) -> Tensor:
        """The mean loss at each row of ``thetas`` (points x free entries, in the order of :attr:`names`), float64:
        O(p²) per point (a landscape's grid)."""
        d = thetas.to(self.theta) - self.theta
        return (self.c + (d * (d @ self.A - 2 * self.g)).sum(1)) / self.count

    def value_and_grad(self, params: Mapping[str, Tensor], trainable: Sequence[str]) -> tuple[Tensor, list[Tensor]]:
        """The mean loss (float64 scalar) and its gradient w.r.t. each of ``trainable`` (its shape and dtype)."""
        if self.host:
            return self._host_value_and_grad(params, trainable)
        value, half = self._sums(params)
        grad = dict(zip(self.names, torch.split(half * (2.0 / self.count), [params[n].numel() for n in self.names])))
        return value, [grad[n].reshape(params[n].shape).to(params[n].dtype) for n in trainable]

    def _host_value_and_grad(self, params: Mapping[str, Tensor], trainable: Sequence[str]):
        mean, half = self._host_sums(params)
        scale, grads, start = 2.0 / self.count, {}, 0
        for name in self.names:
            size = params[name].numel()
            grads[name] = [scale * h for h in half[start : start + size]]
            start += size
        value = torch.tensor(mean, dtype=torch.float64)
        return value, [torch.tensor(grads[n], dtype=params[n].dtype).reshape(params[n].shape) for n in trainable]


def _entries(params: Mapping[str, Tensor], names: Sequence[str]) -> list[float]:
    """Every entry of ``params[name]`` for each of ``names``, in order, as Python floats (exact: float64 widens)."""
    out: list[float] = []
    for name in names:
        value = params[name].detach()
        out.extend(value.reshape(-1).tolist() if value.dim() else [value.item()])
    return out


def _versions(data: tuple) -> tuple:
    """The in-place version counters of the tensors among ``data`` (a row set has none: its rows are read again)."""
    return tuple(t._version if isinstance(t, Tensor) else None for t in data)


def _perturbed(theta: Tensor) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    step = 0.5 + torch.rand(theta.shape, generator=gen, dtype=torch.float64)
    return theta + step.to(theta.device) * (theta.abs() + 1.0)


def _probe_linear(view: ParamView, theta: Tensor, rows: Tensor) -> bool:
    """The Jacobian at ``theta`` and at a perturbed point agree to RTOL on ``rows`` (both finite)."""
    try:
        j1, j2 = view.jacobian(theta, rows), view.jacobian(_perturbed(theta), rows)
    except (RuntimeError, TypeError, ValueError):
        return False
    if not bool(torch.isfinite(j1).all() and torch.isfinite(j2).all()):
        return False
    scale = float(torch.maximum(j1.abs().max(), j2.abs().max())) if j1.numel() else 0.0
    return float((j1 - j2).abs().max()) <= RTOL * max(scale, 1e-300) if j1.numel() else True


def _solve(A: Tensor, b: Tensor) -> Tensor:
    """The least-squares solution of ``A θ = b`` (minimum norm when ``A`` is singular); 0 where none is finite.

    Only the centre of the statistics: any θ gives the same quadratic, one near the optimum keeps it accurate."""
    try:
        theta = torch.linalg.lstsq(A.cpu(), b.cpu()[:, None], driver="gelsd").solution[:, 0].to(A.device)
    except RuntimeError:
        return torch.zeros_like(b)
    return theta if bool(torch.isfinite(theta).all()) else torch.zeros_like(b)

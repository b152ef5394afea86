"""The objective: mean loss over rows, and its gradient, evaluated in chunks.

Rows are processed ``chunk_size`` at a time and the per-chunk sums of the loss and of its
gradient are accumulated in float64. That keeps float32 fits on millions of rows as accurate
as float64 ones (a plain float32 ``mean`` followed by ``backward`` accumulates 10^7 terms in
float32 inside the matrix products and drifts; see tests/train/test_accuracy.py) and bounds
the memory of the autograd graph to one chunk.

With row weights ``w`` the objective is the weighted mean ``Σ wᵢ ℓᵢ / Σ wᵢ`` over the rows given (a
mini-batch's own weights normalise it; see :mod:`gradfit.data.weights`); the weights are indexed
and chunked with the rows.

Paths
-----
The sums can be taken three ways; :meth:`Objective.describe` says which served a fit (``result.diagnostics``):

- ``"autograd"``: the model's forward and eager autograd over each chunk (any model; the default);
- a **chunk pass** (:attr:`Objective.chunk_pass`), a function ``(params, trainable, x, y, w) -> (total,
  grads)`` that replaces autograd on each chunk for the models it was built for (fused formula kernels);
- a **bound path** (:meth:`Objective.bind`), tied to one dataset's tensors, which answers for exactly those
  rows without reading them (sufficient statistics of a model linear in its parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import torch
from torch import Tensor

from gradfit.rowpass import RowSet, RowSource, chunk_rows, reduce, row_count, rows_of


class BoundPath(Protocol):
    """A way to the loss (and gradient) over one dataset's rows that does not take the chunk pass."""

    name: str

    def serves(self, x: Tensor | RowSet, y: Tensor | None, w: Tensor | None) -> bool:
        """Whether these are the rows it was built for (the same tensors, unchanged)."""
        ...

    def value(self, params: Mapping[str, Tensor]) -> Tensor: ...

    def value_and_grad(self, params: Mapping[str, Tensor], trainable: Sequence[str]) -> tuple[Tensor, list[Tensor]]: ...


#: ``(params, trainable, x, y, w) -> (total over the chunk's rows, [its gradient w.r.t. each trainable])``. A pass
#: with an attribute ``rows_per_call`` (one that writes no row-length temporary) is called with chunks of that many
#: rows instead of the objective's chunk size.
ChunkPass = Callable[
    [Mapping[str, Tensor], Sequence[str], Tensor, Tensor, "Tensor | None"], tuple[Tensor, list[Tensor]]
]


class Objective:
    """``loss(model(params, x), y)`` averaged over rows (weighted by ``w`` when given).

    Parameters
    ----------
    model : gradfit.models.base.Model
    loss : gradfit.losses.Loss
        Must provide ``total(pred, target)``, the sum over rows.
    chunk_size : int, optional
        Rows per chunk (``FitConfig.chunk_size``; default :data:`gradfit.rowpass.CHUNK_ROWS`, which keeps float32
        sums accurate to ~1e-7 and is faster than one pass).
    """

    def __init__(self, model, loss, chunk_size: int | None = None):
        self.model = model
        self.loss = loss
        self.chunk_size = chunk_rows(chunk_size)
        self.chunk_pass: ChunkPass | None = None
        self.chunk_pass_name = "autograd"
        self._bound: list[BoundPath] = []
        self._used: dict[str, None] = {}  # the paths that took gradients (or answered bound), in order of first use

    def bind(self, path: BoundPath) -> None:
        """Answer for ``path``'s rows by ``path`` from now on."""
        self._bound.append(path)

    def _path(self, x: Tensor | RowSet, y: Tensor | None, w: Tensor | None, grad: bool) -> BoundPath | None:
        for path in self._bound:
            if path.serves(x, y, w):
                self._used.setdefault(path.name)
                return path
        if grad:  # a value alone is the model's forward whatever the chunk pass: not a path of its own
            self._used.setdefault(self.chunk_pass_name)
        return None

    def describe(self) -> list[str]:
        """The paths that computed this objective's sums so far, in order of first use: those that took a gradient
        or served bound rows; ``["autograd"]`` when only values were asked for (Levenberg-Marquardt takes its own
        Jacobians by autograd)."""
        return list(self._used) or ["autograd"]

    def rows(self, x: Tensor | RowSet, y: Tensor | None, w: Tensor | None = None) -> RowSource:
        """The rows as a :class:`gradfit.rowpass.RowSource` of this objective's chunk size (``x`` may be a
        :class:`gradfit.rowpass.RowSet`, rows not held here, with ``y`` and ``w`` None)."""
        return rows_of(x, y, w, self.chunk_size)

    def _total(self, params, x: Tensor, y: Tensor, w: Tensor | None) -> Tensor:
        pred = self.model(params, x)
        return self.loss.total(pred, y) if w is None else self.loss.total(pred, y, w)

    @torch.no_grad()
    def value(
        self, params: Mapping[str, Tensor], x: Tensor | RowSet, y: Tensor | None = None, w: Tensor | None = None
    ) -> Tensor:
        """The mean loss as a float64 scalar tensor (over the rows ``(x, y, w)``, or over a row set ``x``)."""
        path = self._path(x, y, w, grad=False)
        if path is not None:
            return path.value(params)
        total = reduce(lambda xc, yc, wc: self._total(params, xc, yc, wc), self.rows(x, y, w))
        if total is None:  # no rows
            total = torch.zeros((), dtype=torch.float64, device=x.device if isinstance(x, Tensor) else None)
        return total / row_count(x, w)

    def value_and_grad(
        self,
        params: Mapping[str, Tensor],
        trainable: Sequence[str],
        x: Tensor | RowSet,
        y: Tensor | None = None,
        w: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """The mean loss (float64 scalar) and its gradient w.r.t. ``trainable`` (each in its parameter's dtype)."""
        path = self._path(x, y, w, grad=True)
        if path is not None:
            return path.value_and_grad(params, trainable)
        n = row_count(x, w)
        leaves = [params[name] for name in trainable]
        chunk_pass = self.chunk_pass
        if chunk_pass is not None:

            def fused(xc, yc, wc):
                chunk, grads = chunk_pass(params, trainable, xc, yc, wc)
                return (chunk, *grads)

            per_call = getattr(chunk_pass, "rows_per_call", None)
            rows = self.rows(x, y, w) if per_call is None else rows_of(x, y, w, per_call)
            total, *acc = reduce(fused, rows)
            return total / n, [(a / n).to(p.dtype) for a, p in zip(acc, leaves)]
        if isinstance(x, Tensor) and y is not None and x.shape[0] <= self.chunk_size:
            # One chunk: differentiate the mean directly, exactly as a hand-written loop does.
            with torch.enable_grad():
                mean = self._total(params, x, y, w) / n
                grads = _grad(mean, leaves)
            return mean.detach().double(), grads

        def part(xc, yc, wc):
            with torch.enable_grad():
                chunk = self._total(params, xc, yc, wc)
                return (chunk, *_grad(chunk, leaves))

        total, *acc = reduce(part, self.rows(x, y, w))
        return total / n, [(a / n).to(p.dtype) for a, p in zip(acc, leaves)]


def _grad(value: Tensor, leaves: list[Tensor]) -> list[Tensor]:
    if not leaves:
        return []
    grads = torch.autograd.grad(value, leaves, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves)]

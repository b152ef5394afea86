"""A formula's fused chunk pass for K members at once, by broadcasting: the sweeps' eager fast path.

Each member's scalar parameter is a ``(K, 1)`` column and each data column a ``(m,)`` row, so every node of the
formula's derivative graph (:mod:`gradfit.models.formula_derivative`) takes the smallest shape it can: ``(m,)``
for a node of the data alone (``x**2``: computed once for all members), ``(K, 1)`` for a node of the parameters
alone (``-b``), ``(K, m)`` only for a node of both (``exp(-b*x)``). The loss's slope ``g`` per member and row
follows (:func:`member_slope`), then each parameter's gradient ``Σ_rows g ∂f/∂θ`` with:

- the factors of ``∂f/∂θ`` that do not vary by row taken out of the sum (as :class:`FusedPass` does);
- the factors of the data alone multiplied together on ``(m,)`` and applied by one matrix-vector product, so a
  sum like ``Σ g e x`` reads one ``(K, m)`` product, ``g e``, which the next parameter reuses;
- the products of ``g`` with the member-and-row factors cached within the chunk (``g e`` serves ``a`` and ``b``
  in ``a*exp(-b*x) + c``).

It gives the numbers of :class:`gradfit.train.fused_pass.FusedPass` per member, to rounding, without
``torch.func.vmap``'s per-operation wrapping: 3.2 against 4.6 ns per member and row for ``a*exp(-b*x) + c``, 256
members x 512 rows, float64, one thread (with :mod:`gradfit.allocator`'s memory kept; without it, 23 and 29).
A loss without a member slope here gives None (:func:`member_formula`), and the vmapped pass serves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gradfit.losses import Loss
from gradfit.models.formula import _Context
from gradfit.train.fused_pass import FusedPass, loss_slope

# (predictions (K, m), targets (m,), weights (m,) or None) -> (each member's total (K,), slope per row (K, m), factor)
MemberSlope = Callable[[Tensor, Tensor, "Tensor | None"], tuple[Tensor, Tensor, float]]
Sums = tuple[Tensor, list[Tensor]]


def member_total(rows: Tensor, w: Tensor | None) -> Tensor:
    """Each member's total over the chunk's rows (the last dimension)."""
    return rows.sum(1) if w is None else rows @ w.to(rows.dtype)


def member_slope(loss: Loss) -> MemberSlope | None:
    """Each member's total loss and its slope by the predictions: a fit's (:func:`gradfit.train.fused_pass.loss_slope`)
    with the rows added up per member; None for a loss without a known slope."""
    return loss_slope(loss, member_total)


class MemberFormula:
    """``(free, rest, x, y, w) -> (K chunk totals, [K gradients per free parameter])`` for one formula and loss.

    ``free`` and ``rest`` hold each scalar parameter as ``(K,)``, one value per member (the batched passes'
    per-chunk signature, :mod:`gradfit.train.batched_pass`).
    """

    def __init__(self, fused: FusedPass, slope: MemberSlope):
        self.derivative, self.forward, self.slopes = fused.derivative, fused.forward, fused.slopes
        self.slope = slope

    def __call__(self, free: dict, rest: dict, x: Tensor, y: Tensor, w: Tensor | None) -> Sums:
        K, m = next(iter(free.values())).shape[0], x.shape[0]
        with torch.no_grad():
            params = {n: v.reshape(K, 1) for d in (rest, free) for n, v in d.items()}
            ctx = _Context(x.dtype, x.device)
            values = self.derivative.leaves(params, x)
            self.derivative.run(values, self.forward, ctx)
            pred = ctx.tensor(values[self.derivative.root])
            if pred.shape != (K, m):
                pred = pred.expand(K, m)  # a node of the parameters alone, or of the data alone
            total, g, factor = self.slope(pred, y, w)
            products: dict[tuple[int, ...], Tensor] = {(): g}
            grads = []
            for name in free:
                number, rows, scalars, plan = self.slopes[name]
                if number is None:
                    grads.append(torch.zeros_like(free[name]))
                    continue
                self.derivative.run(values, plan, ctx)
                row_values = {i: ctx.tensor(values[i]) for i in rows}  # a node that varies by row is a tensor
                both = tuple(sorted(i for i, v in row_values.items() if v.ndim == 2))
                data = [v for v in row_values.values() if v.ndim < 2]
                part = _product(products, both, values)
                if data:
                    column = data[0]
                    for more in data[1:]:
                        column = column * more
                    row_sum = part @ column.to(part.dtype).expand(m)
                else:
                    row_sum = part.sum(1)
                grad = row_sum * (factor * number)
                for i in scalars:
                    value = values[i]
                    grad = grad * (value.reshape(-1) if isinstance(value, Tensor) and value.ndim == 2 else value)
                grads.append(grad.expand(K).to(free[name].dtype))
            return total, grads


def _product(products: dict[tuple[int, ...], Tensor], nodes: tuple[int, ...], values: dict) -> Tensor:
    """``g`` times the nodes' values, through the longest product already made of a prefix of them."""
    known = len(nodes)
    while nodes[:known] not in products:
        known -= 1
    part = products[nodes[:known]]
    for n in range(known, len(nodes)):
        part = part * values[nodes[n]]
        products[nodes[: n + 1]] = part
    return part


def member_formula(fused: FusedPass | None, loss: Loss) -> MemberFormula | None:
    """The broadcast pass of ``fused``'s formula under ``loss``, or None (no fused pass, or a loss without a member
    slope)."""
    if fused is None:
        return None
    slope = member_slope(loss)
    return None if slope is None else MemberFormula(fused, slope)

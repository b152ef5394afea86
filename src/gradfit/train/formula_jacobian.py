"""A formula model's predictions and their Jacobian in one pass, from the formula's derivative graph.

:mod:`gradfit.jacobian` takes a Jacobian by one double-backward product per parameter, which builds an autograd
graph, walks it ``p + 1`` times and then stacks the columns: on small problems that is most of a
Levenberg-Marquardt iteration, on large ones several passes over the rows more than needed. A formula has its
derivatives written out (:mod:`gradfit.models.formula_derivative`, where ``exp(-b*x)`` in ``a*exp(-b*x) + c`` is
one node shared by the value and every column), so here the predictions and every column are computed once, under
``torch.no_grad``, straight into one ``(rows, columns)`` buffer. The columns are autograd's to rounding (the rules
are those autograd applies).

It serves :class:`~gradfit.models.formula_model.FormulaModel` with scalar parameters whose functions all have a
derivative rule (:func:`formula_jacobian` returns None otherwise, and the caller keeps autograd). Used by
Levenberg-Marquardt (:mod:`gradfit.train.steppers.levenberg`) and by the error bars and flatness probe after a
fit (:mod:`gradfit.analysis.curvature`).

Examples
--------
>>> from gradfit.models.formula_model import FormulaModel
>>> m = FormulaModel("a*exp(-b*x) + c", inputs=["x"])
>>> fj = formula_jacobian(m, ["a", "b"])
>>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
>>> p = {k: torch.tensor(v, dtype=torch.float64) for k, v in {"a": 2.0, "b": 1.0, "c": 0.5}.items()}
>>> pred, J = fj(p, x)
>>> [round(v, 4) for v in pred.tolist()], [[round(v, 4) for v in row] for row in J.tolist()]
([2.5, 1.2358], [[1.0, -0.0], [0.3679, -0.7358]])
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from gradfit.models.formula import _Context
from gradfit.models.formula_derivative import FormulaDerivative, derive
from gradfit.models.formula_model import FormulaModel


class FormulaJacobian:
    """``(params, x) -> (predictions (n,), Jacobian (n, len(free)))`` of one formula, without autograd.

    Parameters
    ----------
    derivative : FormulaDerivative
        The formula and its derivatives by (at least) the names in ``free``.
    free : sequence of str
        The parameters whose columns are wanted, in the Jacobian's column order.
    """

    name = "formula derivative"

    def __init__(self, derivative: FormulaDerivative, free: Sequence[str]):
        self.derivative, self.free = derivative, tuple(free)
        self.forward = derivative.plan([derivative.root])
        known = [i for i, _ in self.forward]
        # Per column: (number, row nodes, scalar nodes, plan) whose product is the slope; number None: no slope.
        self.columns: list[tuple] = []
        for name in self.free:
            factors = derivative.slope_factors(name)
            if factors is None:
                self.columns.append((None, (), (), ()))
                continue
            number, rows, scalars = factors
            self.columns.append((number, tuple(rows), tuple(scalars), tuple(derivative.plan([*rows, *scalars], known))))

    def predict(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """The predictions alone, ``(n,)``, by the same operations as :meth:`__call__`'s (so the same numbers)."""
        with torch.no_grad():
            ctx = _Context(x.dtype, x.device)
            values = self.derivative.leaves(params, x)
            self.derivative.run(values, self.forward, ctx)
            pred = ctx.tensor(values[self.derivative.root])
        return pred if pred.shape == (x.shape[0],) else pred.broadcast_to((x.shape[0],))

    def __call__(self, params: Mapping[str, Tensor], x: Tensor, extra: int = 0) -> tuple[Tensor, Tensor]:
        """The predictions and the Jacobian at ``params`` for the rows ``x`` (n, len(inputs)), in ``x``'s dtype.

        The Jacobian is column-major (the transpose of a contiguous buffer). With ``extra > 0`` it has
        ``len(free) + extra`` columns, the last ones left unset for the caller (Levenberg-Marquardt writes the
        residuals there, saving a copy of every column).
        """
        n, k = x.shape[0], len(self.free)
        with torch.no_grad():
            ctx = _Context(x.dtype, x.device)
            values = self.derivative.leaves(params, x)
            self.derivative.run(values, self.forward, ctx)
            pred = ctx.tensor(values[self.derivative.root])
            if pred.shape != (n,):
                pred = pred.broadcast_to((n,))  # a formula without columns: one value for every row
            # Column-major: each column is one contiguous write, and JᵀJ one matrix product of the buffer with itself.
            columns = torch.empty(k + extra, n, dtype=x.dtype, device=x.device)
            for j, (number, rows, scalars, plan) in enumerate(self.columns):
                if number is None:
                    columns[j] = 0.0
                    continue
                self.derivative.run(values, plan, ctx)
                _product(number, [values[i] for i in (*scalars, *rows)], columns[j])
        return pred, columns.T


def _product(number: float, factors: list, out: Tensor) -> None:
    """``out[:] = number * factors[0] * factors[1] * ...``, multiplied left to right as written, to the bit.

    Two shortcuts that change no bit: a leading ``1.0 *`` of a tensor is that tensor (``1.0 * v == v`` for every
    IEEE value, the sign of zero and NaN included), and the last product of two tensors of ``out``'s dtype whose
    broadcast has ``out``'s shape is written into ``out`` (the same multiplication, without a temporary and its
    copy). On the rows of a small fit each saved kernel is a few percent of a Levenberg-Marquardt iteration.
    """
    column: Tensor | float = number
    last = len(factors) - 1
    for k, v in enumerate(factors):
        if type(column) is float and column == 1.0 and isinstance(v, Tensor) and v.is_floating_point():
            column = v
        elif k == last and _into(column, v, out):
            torch.mul(column, v, out=out)
            return
        else:
            column = column * v
    out.copy_(column) if isinstance(column, Tensor) else out.fill_(column)


def _into(a, b, out: Tensor) -> bool:
    """Whether ``a * b`` (tensors of ``out``'s dtype and device, scalars or rows) broadcasts to ``out``'s shape."""
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        return False
    if a.dtype != out.dtype or b.dtype != out.dtype or a.device != out.device or b.device != out.device:
        return False
    if a.dim() > 1 or b.dim() > 1:
        return False
    n = out.shape[0]
    return (a.dim() == 0 or a.shape[0] == n) and (b.dim() == 0 or b.shape[0] == n) and (a.dim() + b.dim() > 0)


def formula_jacobian(model, free: Sequence[str]) -> FormulaJacobian | None:
    """The one-pass Jacobian of ``model`` by the parameters ``free``, or None where it does not apply.

    It applies to a :class:`~gradfit.models.formula_model.FormulaModel` (not a subclass) whose parameters are all
    scalars, whose ``sum()``/``mean()`` over rows are computed (``with_data``), and whose functions all have a
    derivative rule.
    """
    if type(model) is not FormulaModel or not set(free) <= set(model.param_names):
        return None
    if not all(s.shape == () for s in model.specs):
        return None
    aggregates = None if model.aggregates is None else tuple(sorted(model.aggregates.items()))
    return _jacobian(model.formula, tuple(model.param_names), tuple(model.inputs), aggregates, tuple(free))


@functools.lru_cache(maxsize=64)
def _jacobian(formula, params: tuple, inputs: tuple, aggregates: tuple | None, free: tuple) -> FormulaJacobian | None:
    """One :class:`FormulaJacobian` per formula, parameters, inputs, aggregates and columns (None where a function
    has no derivative rule): it holds only its plans, which every call reads and none changes, and a fit, its error
    bars and its verdict each ask for it."""
    derivative = _derivative(formula, params, inputs, aggregates)
    return None if derivative is None else FormulaJacobian(derivative, free)


@functools.lru_cache(maxsize=64)
def _derivative(formula, params: tuple, inputs: tuple, aggregates: tuple | None) -> FormulaDerivative | None:
    """:func:`derive`, once per formula, parameters, inputs and aggregates (shared by the column sets asked of it;
    small fits would spend a good part of their time parsing it again)."""
    return derive(formula, params, inputs, None if aggregates is None else dict(aggregates))

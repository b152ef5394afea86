"""The fused chunk pass of a formula model: a chunk's loss and gradient without an autograd graph.

A :class:`FusedPass` is an :data:`gradfit.train.objective.ChunkPass` built from the formula's own derivative
(:mod:`gradfit.models.formula_derivative`): on each chunk it computes the predictions ``f`` once, the loss's
slope ``g = dℓ/df`` per row (weighted), and each parameter's gradient ``Σ g ∂f/∂θ`` with the parts of ``∂f/∂θ``
that do not vary by row taken out of the sum. Shared parts (``exp(-b*x)`` in ``a*exp(-b*x) + c``) are computed
once, under ``torch.no_grad``. The loss's value is computed by the same operations as the loss itself, so it is
the autograd pass's value; the gradients are autograd's to rounding.

Losses with a simple slope are served (``mse``: ``2 r``, ``mae``: ``sign(r)``, ``huber``: ``r`` clipped to
``±delta``, ``bce``: ``sigmoid(f) - y``); other losses, and formulas with a function the derivative has no rule
for, keep the autograd pass (:func:`fused_pass` returns None).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfit.losses import BCE, MAE, MSE, Huber, Loss
from gradfit.models.formula import _Context
from gradfit.models.formula_derivative import FormulaDerivative, derive
from gradfit.models.formula_model import FormulaModel
from gradfit.problem import pack, unflatten
from gradfit.train.scaling import ScaledLoss, ScaledModel

# (predictions, targets, weights) -> (the chunk's total loss, its slope per row (weighted), a factor of the slope)
_LossSlope = Callable[[Tensor, Tensor, "Tensor | None"], tuple[Tensor, Tensor, float]]
# (each row's loss, the rows' weights or None) -> the chunk's total: one number for a fit, one per member for a sweep
Total = Callable[[Tensor, "Tensor | None"], Tensor]


def whole_total(rows: Tensor, w: Tensor | None) -> Tensor:
    """The chunk's one total, by :meth:`gradfit.losses.Loss.total`'s operations (so the value is autograd's)."""
    return rows.sum() if w is None else (rows * w.to(rows.dtype)).sum()


def loss_slope(loss: Loss, total: Total = whole_total) -> _LossSlope | None:
    """The value-and-slope function of ``loss``, its rows added up by ``total``; None for a loss whose slope is not
    known here (only the built-in losses, not subclasses).

    Each row's loss is computed by the loss's own ``per_row`` operations (predictions and targets of one shape, or
    predictions ``(K, m)`` against targets ``(m,)`` for K members), so a fit's value is the autograd pass's.
    """
    kind = type(loss)

    def weighted(g: Tensor, w: Tensor | None) -> Tensor:
        return g if w is None else g * w.to(g.dtype)

    if kind is MSE:

        def mse(pred, y, w):
            r = pred - y
            return total(r**2, w), weighted(r, w), 2.0

        return mse
    if kind is MAE:

        def mae(pred, y, w):
            r = pred - y
            return total(r.abs(), w), weighted(torch.sign(r), w), 1.0

        return mae
    if kind is Huber:
        delta = loss.options["delta"]

        def huber(pred, y, w):
            rows = F.huber_loss(pred, y.expand_as(pred), reduction="none", delta=delta)
            return total(rows, w), weighted(torch.clamp(pred - y, -delta, delta), w), 1.0

        return huber
    if kind is BCE:

        def bce(pred, y, w):
            target = y.to(pred.dtype).expand_as(pred)
            rows = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
            return total(rows, w), weighted(torch.sigmoid(pred) - target, w), 1.0

        return bce
    return None


class FusedPass:
    """``(params, trainable, x, y, w) -> (total loss over the chunk, [gradient by each trainable])`` for one formula.

    Parameters
    ----------
    derivative : FormulaDerivative
        The model's formula and its derivatives.
    loss_slope : callable
        ``(pred, y, w) -> (total, weighted slope per row, factor)``.
    """

    name = "fused formula"

    def __init__(self, derivative: FormulaDerivative, loss_slope: _LossSlope):
        self.derivative, self.loss_slope = derivative, loss_slope
        self.forward = derivative.plan([derivative.root])
        self.slopes: dict[str, tuple] = {}
        for name in derivative.params:
            factors = derivative.slope_factors(name)
            if factors is None:
                self.slopes[name] = (None, (), (), ())
                continue
            number, rows, scalars = factors
            plan = derivative.plan([*rows, *scalars], known=[i for i, _ in self.forward])
            self.slopes[name] = (number, tuple(rows), tuple(scalars), tuple(plan))

    def __call__(
        self, params: Mapping[str, Tensor], trainable: Sequence[str], x: Tensor, y: Tensor, w: Tensor | None
    ) -> tuple[Tensor, list[Tensor]]:
        with torch.no_grad():
            ctx = _Context(x.dtype, x.device)
            values = self.derivative.leaves(params, x)
            self.derivative.run(values, self.forward, ctx)
            pred = ctx.tensor(values[self.derivative.root])
            if pred.shape != y.shape:
                pred = pred.broadcast_to((x.shape[0],))  # a formula without columns: one value for every row
            total, g, factor = self.loss_slope(pred, y, w)
            g_sum = None
            grads = []
            for name in trainable:
                number, rows, scalars, plan = self.slopes[name]
                if number is None:
                    grads.append(torch.zeros_like(params[name]))
                    continue
                self.derivative.run(values, plan, ctx)
                if rows:
                    part = g
                    for i in rows:
                        part = part * values[i]
                    row_sum = part.sum()
                else:
                    g_sum = g.sum() if g_sum is None else g_sum
                    row_sum = g_sum
                grad = row_sum * (factor * number)
                for i in scalars:
                    grad = grad * values[i]
                grads.append(grad.reshape(params[name].shape))
            return total, grads


class ScaledPass:
    """The fused pass of a formula fitted on scaled parameters (:class:`gradfit.train.scaling.ScaledModel`).

    The gradient by the formula's parameters ``p = p0 + A q`` becomes the gradient by ``q`` as autograd's chain
    does it: ``Aᵀ ∂/∂p`` in float64, then each in its parameter's dtype; loss and gradient are divided by the
    loss's factor.
    """

    name = FusedPass.name

    def __init__(self, inner: FusedPass, model: ScaledModel, factor: float):
        self.inner, self.model, self.factor = inner, model, factor
        scaling = model.scaling
        self.free_specs = [s for s in model.specs if s.name in scaling.free]

    def __call__(
        self, params: Mapping[str, Tensor], trainable: Sequence[str], x: Tensor, y: Tensor, w: Tensor | None
    ) -> tuple[Tensor, list[Tensor]]:
        scaling = self.model.scaling
        with torch.no_grad():
            external = self.model.external(params)
            names = list(self.model.original.param_names)
            total, grads = self.inner(external, names, x, y, w)
            by_name = dict(zip(names, grads))
            if scaling.free:
                g = pack(by_name, scaling.free, torch.float64)
                A = scaling.A.to(g.device)
                by_name.update(unflatten(self.free_specs, A.T @ g if A.ndim == 2 else A * g))
            return total / self.factor, [(by_name[n] / self.factor).to(params[n].dtype) for n in trainable]


def fused_pass(model, loss: Loss, params: Mapping[str, Tensor]) -> FusedPass | ScaledPass | None:
    """The fused chunk pass of ``model`` and ``loss``, or None where it does not apply.

    It applies to a :class:`gradfit.models.formula_model.FormulaModel` with scalar floating parameters (its
    ``sum()``/``mean()`` over rows computed, see ``with_data``), whose formula's functions all have a derivative
    rule, and to a loss whose slope is known (see the module); and to such a model and loss on scaled parameters.
    """
    if type(model) is ScaledModel and type(loss) is ScaledLoss:
        inner = fused_pass(model.original, loss.inner, model.external(params))
        return ScaledPass(inner, model, loss.factor) if isinstance(inner, FusedPass) else None
    if type(model) is not FormulaModel:
        return None
    slope = loss_slope(loss)
    names = model.param_names
    if slope is None or not all(params[n].ndim == 0 and params[n].is_floating_point() for n in names):
        return None
    derivative = derive(model.formula, names, model.inputs, model.aggregates)
    return None if derivative is None else FusedPass(derivative, slope)

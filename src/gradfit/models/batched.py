"""A model's predictions and Jacobian for many groups of rows at once, each group with its own parameters.

Parameters come as ``(G, k)`` (one flat row per group, in the model's flat order), rows as ``(G, m, c)`` (each
group's ``m`` rows of ``c`` inputs, padded to a common ``m``); the result is ``(predictions (G, m), Jacobian
columns (G, k, m))``, the columns laid out so that ``JᵀJ`` is one batched product of the buffer with its transpose.

Three ways, the same numbers to rounding (tests hold them to each other and to ``torch.autograd``):

- a formula whose functions all have a derivative rule (:mod:`gradfit.models.formula_derivative`) is evaluated
  from its derivative graph, with each parameter a ``(G, 1)`` column broadcasting against inputs ``(G, m)``: the
  value and every column in one pass of whole-batch operations, no autograd and no Python per group;
- a model with scalar parameters whose forward works row by row (most zoo models and callables) by row-wise
  autograd (:class:`RowwiseJacobian`: one copy of each parameter per row, one backward pass), checked once against
  the last way;
- any model (the fallback, and models with vector parameters) through ``torch.func.vmap`` of
  ``torch.func.jacfwd`` over its ``forward``.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from gradfit.models.base import Model
from gradfit.models.formula import _Context
from gradfit.models.formula_derivative import FormulaDerivative, derive
from gradfit.models.formula_model import FormulaModel


class BatchedJacobian(Protocol):
    """``(p (G, k), x (G, m, c)) -> (predictions (G, m), Jacobian columns (G, k, m))``; ``name`` says which way."""

    name: str

    def __call__(self, p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]: ...


def batched_jacobian(model: Model, general: bool = False) -> BatchedJacobian:
    """The batched predictions-and-Jacobian of ``model`` by all its parameters, flat: the formula fast path where it
    applies, else row-wise autograd for a model with scalar parameters whose forward proves row by row, else (or
    with ``general``) vmap of jacfwd."""
    if general:
        return VmapJacobian(model)
    fast = formula_batch(model)
    if fast is not None:
        return fast
    if all(s.shape == () for s in model.specs):
        return RowwiseJacobian(model)
    return VmapJacobian(model)


def formula_batch(model: Model) -> FormulaBatch | None:
    """The derivative-graph path of a plain formula model with scalar parameters and no ``sum()``/``mean()`` over
    rows (whose value would be the whole table's, not the group's); None otherwise."""
    if type(model) is not FormulaModel or model.formula.reductions:
        return None
    if not all(s.shape == () for s in model.specs):
        return None
    derivative = derive(model.formula, tuple(model.param_names), tuple(model.inputs))
    return None if derivative is None else FormulaBatch(derivative)


class FormulaBatch:
    """The formula's value and its slopes by each parameter, with parameters ``(G, 1)`` and columns ``(G, m)``."""

    name = "formula derivative"

    def __init__(self, derivative: FormulaDerivative):
        self.derivative = derivative
        self.names = derivative.params
        factors = [derivative.slope_factors(n) for n in self.names]
        self.columns = [(f[0], (*f[2], *f[1])) if f is not None else None for f in factors]
        nodes = [i for f in self.columns if f is not None for i in f[1]]
        self.plan = derivative.plan([derivative.root, *nodes])

    def __call__(self, p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        G, m = x.shape[0], x.shape[1]
        with torch.no_grad():
            params = {n: p[:, j : j + 1] for j, n in enumerate(self.names)}
            # leaves() reads column j as x[:, j]: give it the inputs as (G, c, m) so that is group-by-row (G, m).
            values = self.derivative.leaves(params, x.transpose(1, 2))
            ctx = _Context(x.dtype, x.device)
            self.derivative.run(values, self.plan, ctx)
            pred = ctx.tensor(values[self.derivative.root]).expand(G, m)
            J = torch.empty(G, len(self.names), m, dtype=x.dtype, device=x.device)
            for j, column in enumerate(self.columns):
                if column is None:
                    J[:, j] = 0.0
                    continue
                _product(*column, values, J[:, j])
        return pred, J


def _product(number: float, nodes: tuple[int, ...], values: dict, out: Tensor) -> None:
    """``out[:] = number * values[nodes[0]] * ...``, left to right; the last product written straight into ``out``
    when it has ``out``'s shape (no temporary of the chunk's size and no copy of it)."""
    value: Tensor | float = number
    for n, i in enumerate(nodes):
        factor = values[i]
        if n == len(nodes) - 1 and isinstance(factor, Tensor) and isinstance(value, Tensor):
            if factor.dtype == out.dtype and _broadcast(value.shape, factor.shape) == out.shape:
                torch.mul(value, factor, out=out)
                return
        value = factor if type(value) is float and value == 1.0 and isinstance(factor, Tensor) else value * factor
    out.copy_(value) if isinstance(value, Tensor) else out.fill_(value)


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape ``a`` and ``b`` broadcast to, None where they do not (``torch.broadcast_shapes``' rule, without its
    ~60 us a call: ten products a chunk, ten iterations)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


class RowwiseJacobian:
    """Row-wise autograd, for a model with scalar parameters whose forward works row by row (each row's prediction a
    function of that row and the parameters, as most zoo models and callables are): every parameter is given one
    copy per row, ``(G·m,)``, and the rows of all groups go through ``forward`` at once, so one backward pass of the
    predictions' sum gives each row's slope by each parameter (its own copy's gradient). A hundred times faster than
    vmap of jacfwd on 10^4 groups.

    Whether the forward is row by row is checked on the first call, against :class:`VmapJacobian` on two groups
    (the first, and one made from it with other rows and parameters): a forward that mixes rows (a mean over them)
    or fails on per-row parameters gives other numbers or raises, and every call then takes vmap of jacfwd.
    """

    name = "row-wise autograd"

    def __init__(self, model: Model):
        self.model = model
        self.names = [s.name for s in model.specs]
        self.fallback: VmapJacobian | None = None
        self.checked = False

    def _rows(self, p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        G, m, c = x.shape
        columns = p.to(x.dtype).T.unsqueeze(2).expand(len(self.names), G, m).reshape(len(self.names), G * m)
        copies = [column.clone().requires_grad_(True) for column in columns]
        with torch.enable_grad():
            out = self.model.forward(dict(zip(self.names, copies)), x.reshape(G * m, c)).reshape(G * m)
            grads = torch.autograd.grad(out.sum(), copies, allow_unused=True)
        J = torch.stack([torch.zeros_like(out) if g is None else g for g in grads]).reshape(len(copies), G, m)
        return out.detach().reshape(G, m), J.transpose(0, 1)

    def _check(self, p: Tensor, x: Tensor) -> None:
        """Use vmap of jacfwd from now on unless the row-wise numbers equal its own on two groups: the first, and
        one made from it with other rows and other parameters (so that a forward mixing groups shows, whatever the
        data's groups look like)."""
        self.checked = True
        q = torch.stack([p[0], p[0] * 1.1 + 0.1])
        xs = torch.stack([x[0], x[0] * 1.3 + 0.7])
        general = VmapJacobian(self.model)
        try:
            got = self._rows(q, xs)
        except Exception:  # the forward does not take per-row parameters
            self.fallback = general
            return
        want = general(q, xs)
        if not all(torch.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True) for a, b in zip(got, want)):
            self.fallback = general

    def __call__(self, p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.checked and len(p):
            self._check(p, x)
        if self.fallback is not None:
            return self.fallback(p, x)
        return self._rows(p, x)

    @property
    def path(self) -> str:
        """The path the calls take (after the first): ``name``, or vmap of jacfwd's."""
        return self.fallback.name if self.fallback is not None else self.name


class VmapJacobian:
    """``torch.func.vmap`` over groups of ``torch.func.jacfwd`` of the model's forward (any model)."""

    name = "vmap of jacfwd"

    def __init__(self, model: Model):
        self.model = model
        self.specs = model.specs

    def _forward(self, flat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        params, at = {}, 0
        for s in self.specs:
            params[s.name] = flat[at : at + s.size].reshape(s.shape)
            at += s.size
        out = self.model.forward(params, x).reshape(x.shape[0])
        return out, out

    def __call__(self, p: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        if math.prod(p.shape) == 0 or x.shape[0] == 0:
            return x.new_zeros(x.shape[0], x.shape[1]), x.new_zeros(x.shape[0], p.shape[1], x.shape[1])
        jac = torch.func.vmap(torch.func.jacfwd(self._forward, has_aux=True))
        J, pred = jac(p.to(x.dtype), x)
        return pred, J.transpose(1, 2)

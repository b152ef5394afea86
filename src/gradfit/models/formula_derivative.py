"""The derivative of a formula with respect to its parameters, read from the formula's own tree.

:func:`derive` turns a compiled :class:`gradfit.models.formula.Formula` into a :class:`FormulaDerivative`: one
graph of operations in which equal parts are one node (``exp(-b*x)`` in ``a*exp(-b*x) + c`` is computed once,
for the value and for every derivative), holding the formula and, for each parameter, its derivative built by the
sum, product, quotient, power and chain rules. Each rule is the one torch's autograd applies (``sqrt``'s
derivative is ``1 / (2*sqrt(u))``, ``minimum`` splits a tie in halves, ``0**b`` has no slope in ``b`` for
``b >= 0``), so the values are autograd's to rounding. Evaluating it never builds an autograd graph.

The text is parsed again with :mod:`ast`; :func:`gradfit.models.formula.compile_formula` has already checked it
against the whitelist, and nothing in it is executed. A function without a rule here, or a ``sum()``/``mean()``
over rows whose value is not given, gives no derivative (``derive`` returns None), and the caller keeps autograd.

Examples
--------
>>> from gradfit.models.formula import compile_formula
>>> d = derive(compile_formula("a*exp(-b*x) + c"), params=("a", "b", "c"), inputs=("x",))
>>> value, grads = d.evaluate({"a": torch.tensor(2.0), "b": torch.tensor(1.0), "c": torch.tensor(0.5),
...                           "x": torch.tensor([0.0, 1.0])})
>>> value, grads["a"], grads["b"], grads["c"]
(tensor([2.5000, 1.2358]), tensor([1.0000, 0.3679]), tensor([-0.0000, -0.7358]), 1.0)
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gradfit.models.formula import REDUCTIONS, Formula, _Context, _mask_backquotes
from gradfit.models.formula_functions import CONSTANTS, FUNCTIONS

# -- the derivatives' own helpers (never reachable from formula text) ------------------------


def _pick(a: Tensor, b: Tensor) -> Tensor:
    """The share of ``minimum(a, b)``'s slope that goes to ``a``: 1 where a < b, 1/2 on a tie, 0 where a > b."""
    return 1 - (a > b).to(a.dtype) - 0.5 * (a == b).to(a.dtype)


def _positive(u: Tensor) -> Tensor:
    return (u > 0).to(u.dtype)


def _pow_base(a: Tensor, b: Tensor) -> Tensor:
    """d(a**b)/da, 0 where b == 0 (as autograd)."""
    return torch.where(b == 0, 0.0, b * a.pow(b - 1))


def _pow_exponent(a: Tensor, b: Tensor, result: Tensor) -> Tensor:
    """d(a**b)/db, 0 where a == 0 and b >= 0 (as autograd)."""
    return torch.where((a == 0) & (b >= 0), 0.0, result * a.log())


def _softplus_slope(u: Tensor) -> Tensor:
    z = torch.exp(u)
    return torch.where(u > 20, 1.0, z / (z + 1))  # softplus is u itself beyond its threshold of 20


_OPS: dict[str, Callable] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "pow": operator.pow,
}
_AST_OPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}


# -- the graph -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Op:
    kind: str  # "const", "agg", "col", "param", "neg", an arithmetic op of _OPS, or "call"
    args: tuple[int, ...]
    payload: Any  # the number, the column's index, the parameter's name, or the function called


class _Graph:
    """Nodes in the order they are made (each after its arguments); equal nodes are one."""

    def __init__(self) -> None:
        self.ops: list[_Op] = []
        self.rows: list[bool] = []  # whether a node's value varies from row to row
        self.leaves: list[tuple[int, _Op]] = []  # the parameters and columns
        self._seen: dict[tuple, int] = {}

    def node(self, kind: str, args: tuple[int, ...] = (), payload: Any = None) -> int:
        key_payload = float(payload).hex() if kind in ("const", "agg") else payload  # keeps -0.0 apart from 0.0
        key = (kind, args, key_payload)
        index = self._seen.get(key)
        if index is None:
            index = len(self.ops)
            self.ops.append(_Op(kind, args, payload))
            self.rows.append(kind == "col" or any(self.rows[a] for a in args))
            if kind in ("param", "col"):
                self.leaves.append((index, self.ops[index]))
            self._seen[key] = index
        return index

    def const(self, value: float) -> int:
        return self.node("const", (), float(value))

    def number(self, index: int) -> float | None:
        op = self.ops[index]
        return op.payload if op.kind == "const" else None

    # Sums and products of derivatives: None is an exact zero (no dependence), and 0 and 1 are folded away.

    def add(self, a: int | None, b: int | None) -> int | None:
        if a is None or b is None:
            return b if a is None else a
        return self.node("add", (a, b))

    def sub(self, a: int | None, b: int | None) -> int | None:
        if b is None:
            return a
        return self.neg(b) if a is None else self.node("sub", (a, b))

    def neg(self, a: int | None) -> int | None:
        if a is None:
            return None
        number = self.number(a)
        return self.const(-number) if number is not None else self.node("neg", (a,))

    def mul(self, a: int | None, b: int | None) -> int | None:
        if a is None or b is None:
            return None
        if self.number(a) == 1.0:
            return b
        if self.number(b) == 1.0:
            return a
        na, nb = self.number(a), self.number(b)
        if na is not None and nb is not None:
            return self.const(na * nb)
        return self.node("mul", (a, b))

    def div(self, a: int | None, b: int) -> int | None:
        return None if a is None else self.node("div", (a, b))

    def call(self, fn: Callable, *args: int) -> int:
        return self.node("call", args, fn)

    def factors(self, index: int) -> tuple[float, list[int]]:
        """``index`` as a number times a product of nodes (through products and negations)."""
        sign, out, stack = 1.0, [], [index]
        while stack:
            i = stack.pop()
            op = self.ops[i]
            if op.kind == "mul":
                stack.extend(reversed(op.args))
            elif op.kind == "neg":
                sign, stack = -sign, [*stack, op.args[0]]
            elif op.kind == "const":
                sign *= op.payload
            else:
                out.append(i)
        return sign, out


# -- the rules -------------------------------------------------------------------------------

# f(u) -> its derivative given u, f(u) and du (as autograd writes each).
_Rule = Callable[[_Graph, int, int, "int | None"], "int | None"]
_LN10, _LN2 = math.log(10.0), math.log(2.0)


def _unary_rules() -> dict[Callable, _Rule]:
    def slope(fn: Callable) -> _Rule:
        return lambda g, u, out, du: g.mul(du, fn(g, u, out))

    def arcsin_slope(g: _Graph, u: int, out: int) -> int:
        return g.call(torch.rsqrt, g.node("sub", (g.const(1.0), g.node("mul", (u, u)))))

    return {
        torch.exp: slope(lambda g, u, out: out),
        torch.log: lambda g, u, out, du: g.div(du, u),
        torch.log10: lambda g, u, out, du: g.div(du, g.node("mul", (u, g.const(_LN10)))),
        torch.log2: lambda g, u, out, du: g.div(du, g.node("mul", (u, g.const(_LN2)))),
        torch.log1p: lambda g, u, out, du: g.div(du, g.node("add", (u, g.const(1.0)))),
        torch.expm1: slope(lambda g, u, out: g.node("add", (out, g.const(1.0)))),
        torch.sqrt: lambda g, u, out, du: g.div(du, g.node("mul", (g.const(2.0), out))),
        torch.abs: slope(lambda g, u, out: g.call(torch.sign, u)),
        torch.sin: slope(lambda g, u, out: g.call(torch.cos, u)),
        torch.cos: slope(lambda g, u, out: g.node("neg", (g.call(torch.sin, u),))),
        torch.tan: slope(lambda g, u, out: g.node("add", (g.const(1.0), g.node("mul", (out, out))))),
        torch.asin: slope(arcsin_slope),
        torch.acos: slope(lambda g, u, out: g.node("neg", (arcsin_slope(g, u, out),))),
        torch.atan: lambda g, u, out, du: g.div(du, g.node("add", (g.node("mul", (u, u)), g.const(1.0)))),
        torch.sinh: slope(lambda g, u, out: g.call(torch.cosh, u)),
        torch.cosh: slope(lambda g, u, out: g.call(torch.sinh, u)),
        torch.tanh: slope(lambda g, u, out: g.node("sub", (g.const(1.0), g.node("mul", (out, out))))),
        torch.sigmoid: slope(lambda g, u, out: g.node("mul", (out, g.node("sub", (g.const(1.0), out))))),
        F.softplus: slope(lambda g, u, out: g.call(_softplus_slope, u)),
        torch.special.erf: slope(
            lambda g, u, out: g.node(
                "mul", (g.const(2.0 / math.sqrt(math.pi)), g.call(torch.exp, g.node("neg", (g.node("mul", (u, u)),))))
            )
        ),
        torch.relu: slope(lambda g, u, out: g.call(_positive, u)),
    }


_UNARY = _unary_rules()
_BINARY_FUNCTIONS = {torch.atan2: "atan2", torch.minimum: "minimum", torch.maximum: "maximum", torch.pow: "pow"}
_REDUCTION_FUNCTIONS = {FUNCTIONS[name].fn: name for name in REDUCTIONS}

#: The functions of :mod:`gradfit.models.formula_functions` that have a derivative rule here.
DIFFERENTIABLE: frozenset[str] = frozenset(
    name
    for name, spec in FUNCTIONS.items()
    if spec.fn in _UNARY or spec.fn in _BINARY_FUNCTIONS or spec.fn in _REDUCTION_FUNCTIONS
)


class _NoRule(Exception):
    """A part of the formula without a derivative here."""


def _derivative(g: _Graph, index: int, d: list[int | None]) -> int | None:
    """The derivative of node ``index`` from those of its arguments (``d``)."""
    op = g.ops[index]
    if op.kind in ("const", "agg", "col", "param"):
        return None  # parameters are seeded by the caller
    da = [d[a] for a in op.args]
    if all(x is None for x in da):
        return None
    if op.kind == "neg":
        return g.neg(da[0])
    if op.kind == "call":
        return _call_derivative(g, index, op, da)
    (u, v), (du, dv) = op.args, da
    if op.kind in ("add", "sub"):
        return g.add(du, dv) if op.kind == "add" else g.sub(du, dv)
    if op.kind == "mul":
        return g.add(g.mul(du, v), g.mul(u, dv))
    if op.kind == "div":  # d(u/v) = du/v - dv * u/v²
        return g.sub(g.div(du, v), g.mul(dv, g.node("div", (u, g.node("mul", (v, v))))))
    return _pow_derivative(g, index, u, v, du, dv)


def _pow_derivative(g: _Graph, out: int, u: int, v: int, du: int | None, dv: int | None) -> int | None:
    c = g.number(v)
    if c is not None:  # a constant exponent, as in x**2 (negative bases included)
        return None if c == 0 else g.mul(du, g.mul(g.const(c), g.node("pow", (u, g.const(c - 1.0)))))
    return g.add(
        g.mul(du, g.call(_pow_base, u, v) if du is not None else None),
        g.mul(dv, g.call(_pow_exponent, u, v, out) if dv is not None else None),
    )


def _call_derivative(g: _Graph, index: int, op: _Op, da: list[int | None]) -> int | None:
    fn = op.payload
    if fn in _UNARY:
        return _UNARY[fn](g, op.args[0], index, da[0])
    if fn in _REDUCTION_FUNCTIONS:  # of a scalar (a reduction over rows is an aggregate, not a call)
        return g.call(fn, da[0]) if da[0] is not None else None
    name = _BINARY_FUNCTIONS.get(fn)
    if name is None:
        raise _NoRule(getattr(fn, "__name__", str(fn)))
    (a, b), (da_, db) = op.args, da
    if name == "pow":
        return _pow_derivative(g, index, a, b, da_, db)
    if name == "atan2":  # d atan2(a, b) = (b da - a db) / (a² + b²)
        denominator = g.node("add", (g.node("mul", (a, a)), g.node("mul", (b, b))))
        return g.add(
            g.mul(da_, g.node("div", (b, denominator))), g.mul(db, g.node("neg", (g.node("div", (a, denominator)),)))
        )
    first, second = (a, b) if name == "minimum" else (b, a)
    return g.add(g.mul(da_, g.call(_pick, first, second)), g.mul(db, g.call(_pick, second, first)))


# -- from the text to the graph --------------------------------------------------------------


class _Reader:
    """The formula's tree as graph nodes, in the compiler's order (reductions numbered inner first)."""

    def __init__(self, g: _Graph, params: Sequence[str], inputs: Sequence[str], aggregates: Mapping[int, float]):
        self.g, self.params, self.inputs, self.aggregates = g, set(params), list(inputs), aggregates
        self.quoted: dict[str, str] = {}
        self.reductions = 0

    def read(self, text: str) -> int:
        masked, self.quoted = _mask_backquotes(text)
        return self.node(ast.parse(masked.lstrip(), mode="eval").body)

    def node(self, node: ast.expr) -> int:
        if isinstance(node, ast.Constant):
            return self.g.const(float(node.value))  # type: ignore[arg-type]  # a number: compile_formula checked
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp):
            operand = self.node(node.operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            number = self.g.number(operand)  # the compiler keeps -2 a number
            return self.g.const(-number) if number is not None else self.g.node("neg", (operand,))
        if isinstance(node, ast.BinOp):
            chain = []
            while isinstance(node, ast.BinOp):  # a long left-associative chain, without recursion
                chain.append(node)
                node = node.left
            acc = self.node(node)
            for link in reversed(chain):
                acc = self.g.node(_AST_OPS[type(link.op)], (acc, self.node(link.right)))
            return acc
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name), "compile_formula checked the tree"
        args = tuple(self.node(a) for a in node.args)
        fn = FUNCTIONS[node.func.id].fn
        if fn in _REDUCTION_FUNCTIONS:
            k = self.reductions
            self.reductions += 1
            if k in self.aggregates:
                return self.g.node("agg", (), self.aggregates[k])
            if self.g.rows[args[0]]:
                raise _NoRule(f"{node.func.id}() over rows without its value")
        return self.g.call(fn, *args)

    def name(self, name: str) -> int:
        if name in self.quoted:  # a backquoted name is always a variable, even `pi`
            name = self.quoted[name]
        elif name in CONSTANTS:
            return self.g.const(CONSTANTS[name])
        if name in self.inputs:
            return self.g.node("col", (), self.inputs.index(name))
        return self.g.node("param", (), name)


# -- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormulaDerivative:
    """A formula and its derivatives, as one graph of shared operations. Build it with :func:`derive`.

    Attributes
    ----------
    params : tuple of str
        The parameters it differentiates by.
    inputs : tuple of str
        The data columns, in the order of ``x``'s columns in :meth:`evaluate_rows`.
    """

    params: tuple[str, ...]
    inputs: tuple[str, ...]
    _graph: _Graph
    _root: int
    _slopes: Mapping[str, int | None]

    def slope_factors(self, name: str) -> tuple[float, list[int], list[int]] | None:
        """``∂f/∂name`` as ``(number, nodes that vary by row, nodes that do not)``, whose product it is; None if 0.

        A sum over rows of ``g * ∂f/∂name`` is then the number times the scalar nodes times the sum of ``g`` times
        the row nodes, which reads fewer row-long values.
        """
        slope = self._slopes[name]
        if slope is None:
            return None
        number, nodes = self._graph.factors(slope)
        rows = [i for i in nodes if self._graph.rows[i]]
        return number, rows, [i for i in nodes if not self._graph.rows[i]]

    def plan(self, wanted: Sequence[int], known: Sequence[int] = ()) -> list[tuple[int, _Op]]:
        """The operations that compute the nodes ``wanted`` from the parameters, the columns and the nodes
        ``known``, each once and after its arguments (for :meth:`run`)."""
        ops, done, todo = self._graph.ops, set(known), set()
        stack = [i for i in wanted if i not in done]
        while stack:
            i = stack.pop()
            if i in done or i in todo or ops[i].kind in ("param", "col"):
                continue
            todo.add(i)
            stack.extend(ops[i].args)
        return [(i, ops[i]) for i in sorted(todo)]

    @staticmethod
    def run(values: dict[int, Tensor | float], plan: Sequence[tuple[int, _Op]], ctx: _Context) -> None:
        """Carry out ``plan`` (from :meth:`plan`), adding each node's value to ``values``."""
        for i, op in plan:
            values[i] = _compute(op, values, ctx)

    def leaves(self, params: Mapping[str, Tensor], x: Tensor) -> dict[int, Tensor | float]:
        """The values of the graph's parameters and columns for the rows ``x`` (n, len(inputs))."""
        values: dict[int, Tensor | float] = {}
        for i, op in self._graph.leaves:
            if op.kind == "param":
                values[i] = params[op.payload]
            elif op.kind == "col":
                values[i] = x[:, op.payload]
        return values

    @property
    def root(self) -> int:
        """The node of the formula's value."""
        return self._root

    def evaluate(self, env: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The formula's value and its derivative by each parameter (0.0 where it does not depend on it).

        ``env`` holds a tensor for each parameter and input; numbers take the dtype of the first input (of the
        first parameter without inputs), as :meth:`gradfit.models.formula.Formula.evaluate` does.
        """
        tensors = [env[n] for n in (*self.inputs, *self.params)]
        x = torch.stack([env[n] for n in self.inputs], dim=1) if self.inputs else torch.zeros(1, 0)
        ctx = _Context(tensors[0].dtype, tensors[0].device)
        values = self.leaves(env, x)
        slopes = {n: s for n, s in self._slopes.items() if s is not None}
        self.run(values, self.plan([self._root, *slopes.values()]), ctx)
        grads: dict[str, Tensor | float] = {n: 0.0 for n in self.params}
        grads.update({n: values[s] for n, s in slopes.items()})
        return ctx.tensor(values[self._root]), grads


def _compute(op: _Op, values: Mapping[int, Tensor | float], ctx: _Context) -> Tensor | float:
    kind = op.kind
    if kind == "const":
        return op.payload
    if kind == "agg":
        return ctx.tensor(op.payload)
    if kind == "neg":
        return torch.neg(ctx.tensor(values[op.args[0]]))
    if kind == "call":
        return op.payload(*(ctx.tensor(values[a]) for a in op.args))
    a, b = (values[i] for i in op.args)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = ctx.tensor(a)  # as the compiler: two numbers are not combined by Python
    return _OPS[kind](a, b)


def derive(
    formula: Formula, params: Sequence[str], inputs: Sequence[str], aggregates: Mapping[int, float] | None = None
) -> FormulaDerivative | None:
    """The derivatives of ``formula`` by ``params``, or None where a part of it has no rule here.

    Parameters
    ----------
    formula : Formula
        A compiled formula.
    params : sequence of str
        The names to differentiate by (scalars).
    inputs : sequence of str
        The names that are data columns.
    aggregates : mapping of int to float, optional
        The values of its ``sum()``/``mean()`` over rows, by index (as
        :attr:`gradfit.models.formula_model.FormulaModel.aggregates`); without them a formula with such a
        reduction has no derivative here.
    """
    g = _Graph()
    try:
        root = _Reader(g, params, inputs, aggregates or {}).read(formula.text)
    except _NoRule:
        return None
    read = len(g.ops)
    seeds = {g.node("param", (), name): name for name in params}
    slopes: dict[str, int | None] = {}
    try:
        for name in params:
            d: list[int | None] = []
            for i in range(read):  # every node after its arguments; the nodes made here come later
                d.append(g.const(1.0) if seeds.get(i) == name else _derivative(g, i, d))
            slopes[name] = d[root]
    except _NoRule:
        return None
    return FormulaDerivative(tuple(params), tuple(inputs), g, root, slopes)

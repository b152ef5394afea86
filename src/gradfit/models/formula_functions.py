"""The formula language: the functions, constants and operators a formula may use.

This table is the whole whitelist: a name that is not a key of :data:`FUNCTIONS` or
:data:`CONSTANTS` can only be a variable (a data column or a parameter). Adding a function
means adding one row here; the compiler looks nothing up anywhere else. The messages for
the refused node types live here too, next to what is allowed.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FormulaFunction:
    """One allowed function: its name in formulas, its arity and the torch call it becomes."""

    name: str
    arity: int
    fn: Callable[..., torch.Tensor]
    doc: str = ""

    @property
    def usage(self) -> str:
        """How to call it, for error messages: ``exp(x)``, ``atan2(y, x)``."""
        args = ["x"] if self.arity == 1 else ["a", "b"]
        return f"{self.name}({', '.join(args)})"


def _reduce_sum(t: torch.Tensor) -> torch.Tensor:
    return torch.sum(t)


def _reduce_mean(t: torch.Tensor) -> torch.Tensor:
    return torch.mean(t)


_ROWS: list[tuple[tuple[str, ...], int, Callable[..., torch.Tensor], str]] = [
    (("exp",), 1, torch.exp, "e to the power x"),
    (("log",), 1, torch.log, "natural logarithm"),
    (("log10",), 1, torch.log10, "base-10 logarithm"),
    (("log2",), 1, torch.log2, "base-2 logarithm"),
    (("log1p",), 1, torch.log1p, "log(1 + x), accurate near 0"),
    (("expm1",), 1, torch.expm1, "exp(x) - 1, accurate near 0"),
    (("sqrt",), 1, torch.sqrt, "square root"),
    (("abs",), 1, torch.abs, "absolute value"),
    (("sin",), 1, torch.sin, "sine (radians)"),
    (("cos",), 1, torch.cos, "cosine (radians)"),
    (("tan",), 1, torch.tan, "tangent (radians)"),
    (("arcsin", "asin"), 1, torch.asin, "inverse sine"),
    (("arccos", "acos"), 1, torch.acos, "inverse cosine"),
    (("arctan", "atan"), 1, torch.atan, "inverse tangent"),
    (("arctan2", "atan2"), 2, torch.atan2, "angle of the point (b, a): atan2(y, x)"),
    (("sinh",), 1, torch.sinh, "hyperbolic sine"),
    (("cosh",), 1, torch.cosh, "hyperbolic cosine"),
    (("tanh",), 1, torch.tanh, "hyperbolic tangent"),
    (("sigmoid",), 1, torch.sigmoid, "logistic function 1 / (1 + exp(-x))"),
    (("softplus",), 1, F.softplus, "log(1 + exp(x))"),
    (("erf",), 1, torch.special.erf, "error function"),
    (("relu",), 1, torch.relu, "max(x, 0)"),
    (("minimum", "min"), 2, torch.minimum, "element-wise minimum of two values"),
    (("maximum", "max"), 2, torch.maximum, "element-wise maximum of two values"),
    (("pow",), 2, torch.pow, "a to the power b, same as a**b"),
    (("sum",), 1, _reduce_sum, "sum of all values (a scalar); of a data column: over every row fitted, computed once"),
    (
        ("mean",),
        1,
        _reduce_mean,
        "mean of all values (a scalar); of a data column: over every row fitted, computed once",
    ),
]

#: Allowed functions by every name they may be called by.
FUNCTIONS: dict[str, FormulaFunction] = {
    alias: FormulaFunction(alias, arity, fn, doc) for names, arity, fn, doc in _ROWS for alias in names
}

#: Named constants; they are numbers, never variables to fit.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


# -- the operators and the messages for what is refused ------------------------------------

BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
SYMBOLS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
}
# Left-associative chains (a + b - c + ...) are compiled into one loop, so a long sum is not
# a deep tree: neither the depth limit nor Python's recursion limit trips on it.
FAMILY = {ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "mul"}
_PIECEWISE = "use minimum, maximum or relu for piecewise curves"
REFUSED = {
    ast.Subscript: "indexing or slicing ('x[0]') is not allowed in a formula; "
    "each name is a whole data column or a scalar parameter",
    ast.Lambda: "lambda functions are not allowed in a formula",
    ast.Compare: f"comparisons (<, ==, ...) are not allowed in a formula; {_PIECEWISE}",
    ast.BoolOp: f"boolean operators (and, or) are not allowed in a formula; {_PIECEWISE}",
    ast.IfExp: f"conditional expressions (a if b else c) are not allowed in a formula; {_PIECEWISE}",
    ast.JoinedStr: "strings are not allowed in a formula",
    ast.NamedExpr: "assignment expressions (:=) are not allowed in a formula",
    ast.Starred: "starred arguments (*x) are not allowed in a formula",
    **dict.fromkeys(
        (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp), "comprehensions are not allowed in a formula"
    ),
    **dict.fromkeys(
        (ast.List, ast.Tuple, ast.Set, ast.Dict),
        "lists, tuples, sets and dicts are not allowed in a formula; it computes one number per row",
    ),
}
HINT = "A formula uses numbers, names, + - * / **, parentheses and calls such as exp(x)."


def allowed_functions() -> str:
    """The allowed function names, sorted and comma-separated, for error messages."""
    return ", ".join(sorted(FUNCTIONS))

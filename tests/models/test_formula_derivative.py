"""The symbolic derivative of a formula (gradfit.models.formula_derivative) against torch.autograd, row by row."""

from __future__ import annotations

import pytest
import torch

from gradfit.models.formula import compile_formula
from gradfit.models.formula_derivative import DIFFERENTIABLE, derive
from gradfit.models.formula_functions import FUNCTIONS
from gradfit.models.formula_model import FormulaModel

X = torch.cat([torch.linspace(0.05, 0.95, 37, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)])
START = {"a": 0.7, "b": 1.3, "c": -0.4}

# Every function with a rule, the operators, powers of negative bases, division, nesting, constants.
CORPUS = [
    "a*exp(-b*x) + c",
    "log(a*x) + log10(b*x) + log2(x*(c + 1))",
    "log1p(a*x) - expm1(b*x)",
    "sqrt(a*x + b)",
    "abs(a*x - b*0.5)",
    "sin(a*x)*cos(b*x) + tan(c*x)",
    "asin(a*x) + arcsin(b*x*0.5) + acos(c*x)",
    "arccos(a*x) + atan(a*x) + arctan(b)",
    "atan2(a*x, b) + arctan2(c, x)",
    "sinh(a*x) + cosh(b*x) + tanh(c*x)",
    "sigmoid(a*x + b)",
    "softplus(a*x*60 - b) + softplus(c*x)",  # beyond softplus's threshold of 20 for the larger x
    "erf(a*x + c)",
    "relu(a*x - b*0.3)",
    "minimum(a*x, b) + maximum(c*x, b - 1)",
    "min(a, b*x) + max(a, x)",
    "pow(a*x, b) + pow(x, 2)*c",
    "(x - 3)**2*a + (b*x - 3)**3 + (c*x)**-2",  # negative bases, integer exponents
    "(x - 3)**a + b",  # a negative base to a parameter's power: NaN, as autograd's
    "a**x + 2**(b*x) + 0**(c*x) + x**a",
    "a / (b + x) - c / x**2 + x/a/b",
    "a*x / (b*x + c)",
    "exp(sin(a*x)**2 / (1 + b*x**2)) * log(1 + c**2)",
    "2**0.5*a*x - -b + +c",
    "-a*x + pi*b + e*c",
    "a*x + b + c*0",
    "a*x*x*x + b*(x - 1)*(x - 1) + c",
    "tanh(a*tanh(b*tanh(c*x)))",
]


def autograd_rows(text: str, params: dict[str, float], x: Tensor = X) -> tuple[Tensor, dict[str, Tensor]]:
    """The formula's value and each parameter's derivative per row, by autograd: every row has its own copy of each
    parameter (a vector of equal entries), so the gradient of the sum is the derivative of each row."""
    formula = compile_formula(text)
    leaves = {n: torch.full_like(x, v, requires_grad=True) for n, v in params.items()}
    value = formula.evaluate({**leaves, "x": x}).broadcast_to(x.shape)
    grads = torch.autograd.grad(value.sum(), list(leaves.values()), allow_unused=True)
    return value.detach(), {n: torch.zeros_like(x) if g is None else g for n, g in zip(leaves, grads)}


def symbolic_rows(text: str, params: dict[str, float], x: Tensor = X, aggregates=None):
    formula = compile_formula(text)
    names = tuple(n for n in formula.names if n != "x")
    derivative = derive(formula, names, ("x",) if "x" in formula.names else (), aggregates)
    assert derivative is not None
    env = {n: torch.tensor(params[n], dtype=x.dtype) for n in names}
    value, grads = derivative.evaluate({**env, "x": x})
    return value.broadcast_to(x.shape), {
        n: torch.as_tensor(g, dtype=x.dtype).broadcast_to(x.shape) for n, g in grads.items()
    }


Tensor = torch.Tensor


@pytest.mark.parametrize("text", CORPUS)
def test_the_derivative_equals_autograd(text):
    names = [n for n in compile_formula(text).names if n != "x"]
    params = {n: START[n] for n in names}
    want_value, want = autograd_rows(text, params)
    value, got = symbolic_rows(text, params)
    torch.testing.assert_close(value, want_value, rtol=1e-13, atol=0, equal_nan=True)
    for name in names:
        torch.testing.assert_close(got[name], want[name], rtol=1e-12, atol=1e-14, equal_nan=True, msg=name)


def test_the_corpus_can_tell_a_wrong_derivative():
    """The comparison above fails for a slope off by a little: it is not vacuous."""
    value, got = symbolic_rows("a*exp(-b*x) + c", START)
    _, want = autograd_rows("a*exp(-b*x) + c", START)
    assert not torch.allclose(got["b"] * (1 + 1e-9), want["b"], rtol=1e-12, atol=0)


def test_ties_split_the_slope_of_minimum_and_maximum_in_halves():
    """At x = 0.5 with a = 1, b = 0.5 the two sides are equal: each gets half the slope, as in autograd."""
    params = {"a": 1.0, "b": 0.5, "c": 1.0}
    for text in ("minimum(a*x, b) + c", "maximum(b, a*x) + c"):
        _, want = autograd_rows(text, params)
        _, got = symbolic_rows(text, params)
        assert float(want["a"][-1]) == 0.25  # the tie: half of d(a*x)/da = x = 0.5
        torch.testing.assert_close(got["a"], want["a"], rtol=0, atol=0)
        torch.testing.assert_close(got["b"], want["b"], rtol=0, atol=0)


def test_every_function_of_the_formula_language_has_a_rule():
    assert DIFFERENTIABLE == set(FUNCTIONS)


def test_a_mean_over_rows_is_a_given_number():
    """``a*(x - mean(x))``: the mean over the fitted rows is the model's aggregate, a constant with no slope."""
    model = FormulaModel("a*(x - mean(x)) + b", columns=["x"]).with_data(X[:, None])
    derivative = derive(model.formula, model.param_names, model.inputs, model.aggregates)
    assert derivative is not None
    params = {"a": torch.tensor(0.7, dtype=torch.float64), "b": torch.tensor(1.3, dtype=torch.float64)}
    value, grads = derivative.evaluate({**params, "x": X})
    torch.testing.assert_close(value, model(params, X[:, None]), rtol=0, atol=0)
    torch.testing.assert_close(grads["a"], X - X.mean(), rtol=1e-14, atol=1e-15)
    # Without the value over all rows a chunk cannot compute it: no derivative, the caller keeps autograd.
    assert derive(model.formula, model.param_names, model.inputs, None) is None


def test_backquoted_names_and_shared_parts():
    text = "a*exp(-b*`my x`) + `pi`*exp(-b*`my x`)"  # `pi` backquoted is a parameter, not 3.14159
    formula = compile_formula(text)
    derivative = derive(formula, ("a", "b", "pi"), ("my x",))
    assert derivative is not None
    exps = [op for op in derivative._graph.ops if op.kind == "call" and op.payload is torch.exp]
    assert len(exps) == 1  # exp(-b*x) is one node, for the value and the slopes
    env = {"a": torch.tensor(0.7, dtype=torch.float64), "b": torch.tensor(1.3, dtype=torch.float64)}
    env["pi"] = torch.tensor(2.0, dtype=torch.float64)
    value, grads = derivative.evaluate({**env, "my x": X})
    torch.testing.assert_close(value, 2.7 * torch.exp(-1.3 * X))
    torch.testing.assert_close(grads["pi"], torch.exp(-1.3 * X))


def test_a_long_sum_is_read_without_recursion():
    text = "+".join(["a", "x"] * 500)  # a chain of 999 additions, deeper than Python's recursion limit allows
    derivative = derive(compile_formula(text), ("a",), ("x",))
    assert derivative is not None
    value, grads = derivative.evaluate({"a": torch.tensor(1.5, dtype=torch.float64), "x": X})
    torch.testing.assert_close(value, 500 * (1.5 + X), rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.as_tensor(grads["a"]), torch.tensor(500.0, dtype=torch.float64))


def test_reductions_of_parameters():
    """``sum(a)`` of a scalar parameter is the parameter; its slope is autograd's (scalar parameters here)."""
    text = "sum(a)*x + mean(b) + sum(c*2)"
    params = {n: torch.tensor(START[n], dtype=torch.float64, requires_grad=True) for n in "abc"}
    value = compile_formula(text).evaluate({**params, "x": X})
    want = torch.autograd.grad(value.sum(), list(params.values()))
    derivative = derive(compile_formula(text), ("a", "b", "c"), ("x",))
    assert derivative is not None
    got_value, got = derivative.evaluate({**{n: p.detach() for n, p in params.items()}, "x": X})
    torch.testing.assert_close(got_value, value.detach(), rtol=0, atol=0)
    for name, g in zip("abc", want):
        torch.testing.assert_close(torch.as_tensor(got[name]).broadcast_to(X.shape).sum(), g, rtol=1e-13, atol=0)


def test_float32_numbers_take_the_columns_dtype():
    x = X.float()
    value, got = symbolic_rows("a*exp(-b*x) + 2**0.5*c", START, x)
    assert value.dtype == torch.float32 and got["b"].dtype == torch.float32
    _, want = autograd_rows("a*exp(-b*x) + 2**0.5*c", START, x)
    torch.testing.assert_close(got["b"], want["b"], rtol=1e-6, atol=1e-7)


def test_a_function_without_a_rule_gives_no_derivative(monkeypatch):
    from gradfit.models import formula_derivative

    monkeypatch.delitem(formula_derivative._UNARY, torch.special.erf)
    assert derive(compile_formula("a*erf(b*x)"), ("a", "b"), ("x",)) is None
    assert derive(compile_formula("a*exp(b*x)"), ("a", "b"), ("x",)) is not None

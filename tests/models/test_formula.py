"""The formula compiler against torch written by hand, and its refusal of everything else."""

from __future__ import annotations

import builtins
import io
import math
import pickle
import tokenize
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import jacrev, vmap

import gradfit.models.formula as formula_module
import gradfit.models.formula_functions as functions_module
from gradfit.errors import FormulaError, ModelError
from gradfit.models.formula import Formula, compile_formula
from gradfit.models.formula_model import FormulaModel

X = torch.linspace(0.11, 0.89, 6, dtype=torch.float64)  # inside every function's domain, no ties at kinks
PARAMS = {"a": 0.7, "b": 1.3, "c": -0.4, "b1": 2.5, "b2": 0.8}


def _t(v, like):
    return torch.tensor(v, dtype=like.dtype)


# (formula, names in order of first appearance, the same expression written directly in torch)
VALID = [
    ("a*t**2 + b*t + c", ("a", "t", "b", "c"), lambda v: v["a"] * v["t"] ** 2 + v["b"] * v["t"] + v["c"]),
    ("b1*(1-exp(-b2*x))", ("b1", "b2", "x"), lambda v: v["b1"] * (1 - torch.exp(-v["b2"] * v["x"]))),
    ("-x**2 + a", ("x", "a"), lambda v: -(v["x"] ** 2) + v["a"]),
    ("a*2**-1 + x - +b", ("a", "x", "b"), lambda v: v["a"] * 0.5 + v["x"] - v["b"]),
    ("a*1.5e-3*x + 2E2 - b*.5", ("a", "x", "b"), lambda v: v["a"] * 0.0015 * v["x"] + 200.0 - v["b"] * 0.5),
    ("a*sin(pi*x) + e**b", ("a", "x", "b"), lambda v: v["a"] * torch.sin(math.pi * v["x"]) + math.e ** v["b"]),
    ("sum(a*x**2)", ("a", "x"), lambda v: torch.sum(v["a"] * v["x"] ** 2)),
    ("mean((a*x - b)**2)", ("a", "x", "b"), lambda v: torch.mean((v["a"] * v["x"] - v["b"]) ** 2)),
    (
        "log(a*x) + log10(x) + log2(b*x) + log1p(x) + expm1(a*x)",
        ("a", "x", "b"),
        lambda v: (
            torch.log(v["a"] * v["x"])
            + torch.log10(v["x"])
            + torch.log2(v["b"] * v["x"])
            + torch.log1p(v["x"])
            + torch.expm1(v["a"] * v["x"])
        ),
    ),
    (
        "sqrt(a*x) + abs(b - x) + tan(a*x) + cos(b*x)",
        ("a", "x", "b"),
        lambda v: (
            torch.sqrt(v["a"] * v["x"])
            + torch.abs(v["b"] - v["x"])
            + torch.tan(v["a"] * v["x"])
            + torch.cos(v["b"] * v["x"])
        ),
    ),
    (
        "arcsin(a*x/2) + asin(x/2) + arccos(x/2) + acos(b*x/2) + arctan(a*x) + atan(x)",
        ("a", "x", "b"),
        lambda v: (
            torch.asin(v["a"] * v["x"] / 2)
            + torch.asin(v["x"] / 2)
            + torch.acos(v["x"] / 2)
            + torch.acos(v["b"] * v["x"] / 2)
            + torch.atan(v["a"] * v["x"])
            + torch.atan(v["x"])
        ),
    ),
    (
        "arctan2(a, x) + atan2(x, b)",
        ("a", "x", "b"),
        lambda v: torch.atan2(v["a"].expand_as(v["x"]), v["x"]) + torch.atan2(v["x"], v["b"].expand_as(v["x"])),
    ),
    (
        "sinh(a*x) + cosh(b*x) + tanh(x) + sigmoid(a*x) + softplus(b*x)",
        ("a", "x", "b"),
        lambda v: (
            torch.sinh(v["a"] * v["x"])
            + torch.cosh(v["b"] * v["x"])
            + torch.tanh(v["x"])
            + torch.sigmoid(v["a"] * v["x"])
            + F.softplus(v["b"] * v["x"])
        ),
    ),
    (
        "erf(a*x) + relu(x - b) + minimum(a, x) + min(x, b) + maximum(a*x, b) + max(x, 0.5)",
        ("a", "x", "b"),
        lambda v: (
            torch.erf(v["a"] * v["x"])
            + torch.relu(v["x"] - v["b"])
            + torch.minimum(v["a"], v["x"])
            + torch.minimum(v["x"], v["b"])
            + torch.maximum(v["a"] * v["x"], v["b"])
            + torch.maximum(v["x"], _t(0.5, v["x"]))
        ),
    ),
    ("pow(a, 2) * x / b", ("a", "x", "b"), lambda v: torch.pow(v["a"], 2) * v["x"] / v["b"]),
    (
        "exp(exp(-a*x)) / (1 + log(b + sqrt(x)))",
        ("a", "x", "b"),
        lambda v: torch.exp(torch.exp(-v["a"] * v["x"])) / (1 + torch.log(v["b"] + torch.sqrt(v["x"]))),
    ),
    ("a - b - x + 1 - 2", ("a", "b", "x"), lambda v: (((v["a"] - v["b"]) - v["x"]) + 1) - 2),
    ("a / x / b * 2", ("a", "x", "b"), lambda v: ((v["a"] / v["x"]) / v["b"]) * 2),
    ("x**a**b + 2**(b*x)", ("x", "a", "b"), lambda v: v["x"] ** (v["a"] ** v["b"]) + 2 ** (v["b"] * v["x"])),
    ("  -(-a) * x\n", ("a", "x"), lambda v: v["a"] * v["x"]),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("text, names, oracle", VALID, ids=[v[0].strip() for v in VALID])
def test_values_and_gradients_match_torch(text, names, oracle, dtype):
    f = compile_formula(text)
    assert f.names == names
    params = [n for n in names if n not in ("x", "t")]

    def env():
        out = {n: torch.tensor(PARAMS[n], dtype=dtype, requires_grad=True) for n in params}
        out.update({n: X.to(dtype) for n in names if n in ("x", "t")})
        return out

    got_env, want_env = env(), env()
    got, want = f.evaluate(got_env), oracle(want_env)
    assert got.dtype == dtype
    torch.testing.assert_close(got, want.to(dtype))
    weights = torch.linspace(0.5, 1.5, got.numel(), dtype=dtype).reshape(got.shape)
    got_grads = torch.autograd.grad((got * weights).sum(), [got_env[n] for n in params])
    want_grads = torch.autograd.grad((want * weights).sum(), [want_env[n] for n in params])
    for name, g, w in zip(params, got_grads, want_grads):
        torch.testing.assert_close(g, w, msg=f"gradient w.r.t. {name}")


def test_numbers_take_the_inputs_dtype_and_floats_are_accepted():
    f = compile_formula("a*x + 0.1")
    out = f.evaluate({"a": 2.0, "x": torch.tensor([1.0], dtype=torch.float64)})
    assert out.dtype == torch.float64
    assert out.item() == 2.0 + 0.1  # 0.1 was not rounded through float32
    assert compile_formula("2**-1 + pi").evaluate({}).dtype == torch.float32
    assert compile_formula("1/0").evaluate({}).item() == math.inf  # torch semantics, not Python's ZeroDivisionError


def test_sum_gives_the_scalar_for_the_cli_grad_example():
    x = torch.tensor([3.0, 4.0, 10.0], requires_grad=True)
    out = compile_formula("sum(x**2)").evaluate({"x": x})
    assert out.shape == ()
    (grad,) = torch.autograd.grad(out, x)
    torch.testing.assert_close(grad, 2 * x.detach())


def test_missing_names_are_named():
    f = compile_formula("a*x + b")
    with pytest.raises(ModelError, match=r"'a', 'b'"):
        f.evaluate({"x": torch.ones(2)})
    with pytest.raises(ModelError, match="must be a tensor or a number"):
        f.evaluate({"x": torch.ones(2), "a": "one", "b": 1.0})


def test_formula_repr_equality_and_pickle():
    f = compile_formula("a*x + b")
    assert repr(f) == "Formula('a*x + b', names=('a', 'x', 'b'))"
    g = pickle.loads(pickle.dumps(f))
    assert isinstance(g, Formula) and g == f
    torch.testing.assert_close(g.evaluate({"a": 2.0, "x": torch.ones(2), "b": 1.0}), torch.full((2,), 3.0))


def test_long_flat_sum_is_not_deep():
    text = "+".join(["x"] * 600)  # 1,199 nodes, compiled as one loop
    torch.testing.assert_close(compile_formula(text).evaluate({"x": torch.ones(3)}), torch.full((3,), 600.0))
    assert compile_formula("(" * 100 + "x" + ")" * 100).names == ("x",)


# -- refusals -----------------------------------------------------------------------------


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


HOSTILE = [
    ("__import__('os').system('touch {marker}')", r"attribute access \('\.system'\)"),
    ("__import__('os')", r"unknown function '__import__'; allowed functions are: abs, acos"),
    ("open('{marker}', 'w')", r"unknown function 'open'"),
    ("().__class__.__bases__", r"attribute access \('\.__class__'\)"),
    ("open('/etc/passwd')", r"unknown function 'open'"),
    ("lambda: 1", "lambda functions are not allowed"),
    ("x.real", r"attribute access \('\.real'\)"),
    ("[i for i in x]", "comprehensions are not allowed"),
    ("(i for i in x)", "comprehensions are not allowed"),
    ("x[0]", "indexing or slicing"),
    ("getattr(x, 'y')", "unknown function 'getattr'"),
    ("a if b else c", "conditional expressions"),
    ('f"{x}"', "strings are not allowed"),
    ("exp(x=1)", "keyword arguments are not allowed in a formula; write exp\\(x\\)"),
    ("a; b", "';' separates statements"),
    ("a = 1", r"assignments \('='\) are not allowed"),
    ("y = a*x + b", r"assignments \('='\) are not allowed"),
    ("a < b", "comparisons"),
    ("a and b", "boolean operators"),
    ("'abc'", "strings are not allowed"),
    ("b'abc'", "strings are not allowed"),
    ("None", "None is not allowed"),
    ("True * x", "True is not allowed"),
    ("2j*x", "complex numbers"),
    ("(y := 2)", "assignment expressions"),
    ("exp(*x)", "starred arguments"),
    ("{1: x}", "lists, tuples, sets and dicts"),
    ("[x]", "lists, tuples, sets and dicts"),
    ("a, x", "lists, tuples, sets and dicts"),
    ("{x}", "lists, tuples, sets and dicts"),
    ("__x__ + 1", "names starting with '_'"),
    ("_a*x", "names starting with '_'"),
    ("atan2(x)", r"atan2\(\) takes 2 arguments \(atan2\(a, b\)\); got 1"),
    ("sum(x, 1)", r"sum\(\) takes 1 argument"),
    ("exp*2", r"exp is a function; call it as exp\(\.\.\.\)"),
    ("pi(2)", "pi is a constant"),
    ("x ^ 2", r"'\^' is not a power operator.*\*\*"),
    ("x // 2", "the operator '//' is not allowed"),
    ("x % 2", "the operator '%' is not allowed"),
    ("x @ a", "the operator '@' is not allowed"),
    ("x << 1", "the operator '<<' is not allowed"),
    ("x & a", "the operator '&' is not allowed"),
    ("~x", "the operator '~' is not allowed"),
    ("not x", "the operator 'not' is not allowed"),
    ("1e999 * x", "too large"),
    ("9" * 400 + "*x", "too large"),
    ("a*x +", "not a valid expression"),
    ("   ", "empty"),
    ("", "empty"),
    ("(" * 1000 + "x" + ")" * 1000, "deeper than 100"),
    ("-" * 150 + "x", "deeper than 100"),
    ("exp(" * 101 + "x" + ")" * 101, "deeper than 100"),
    ("x" + "+x" * 1500, "at most 2,000"),
    ("x+" * 10_000 + "x", "20,001 characters long; at most 10,000"),
]


@pytest.mark.parametrize("text, message", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_and_invalid_text_is_refused_at_compile_time(text, message, marker):
    with pytest.raises(FormulaError, match=message):
        compile_formula(text.format(marker=marker) if "{marker}" in text else text)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, offset, length",
    [
        ("x.real", 1, 5),
        ("a*t**2 + open(t)", 9, 4),
        ("a ^ 2", 2, 1),
        ("a*x // 2", 4, 2),
        ("a; b", 1, 1),
        ("  exp(x, y)", 2, 9),
        ("α*x.y", 3, 2),  # ast counts UTF-8 bytes; the caret counts characters
        ("exp(x=1)", 4, 3),
    ],
)
def test_caret_points_at_the_offending_part(text, offset, length):
    with pytest.raises(FormulaError) as info:
        compile_formula(text)
    assert (info.value.offset, info.value.length) == (offset, length)
    assert str(info.value).endswith("\n    " + text + "\n    " + " " * offset + "^" * length)


def test_non_string_is_refused():
    with pytest.raises(FormulaError, match="must be a string.*Got int instead"):
        compile_formula(3)


def test_parser_recursion_and_memory_errors_become_formula_errors(monkeypatch):
    for exc in (RecursionError, MemoryError):

        def boom(*args, exc=exc, **kwargs):
            raise exc()

        monkeypatch.setattr(formula_module.ast, "parse", boom)
        with pytest.raises(FormulaError, match=exc.__name__):
            compile_formula("x + a")


def test_nothing_is_evaluated_or_executed(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    out = compile_formula("b1*(1-exp(-b2*x))").evaluate({"b1": 2.0, "b2": 1.0, "x": torch.zeros(2)})
    torch.testing.assert_close(out, torch.zeros(2))


def test_the_compiler_source_uses_no_dynamic_execution():
    banned = {"eval", "exec", "compile", "getattr", "__import__", "globals", "locals", "vars"}
    for module in (formula_module, functions_module):
        source = Path(module.__file__).read_text()
        names = {
            tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.NAME
        }
        assert not names & banned, module.__name__


# -- FormulaModel -------------------------------------------------------------------------


def test_inputs_are_the_data_columns_and_the_rest_are_parameters():
    m = FormulaModel("a*t**2 + b*t + c", columns=["y", "t"])
    assert m.inputs == ("t",) and m.param_names == ("a", "b", "c")
    assert all(s.shape == () and s.default == 1.0 for s in m.specs)
    assert m.name == "a*t**2 + b*t + c" and m.n_outputs == 1
    assert m.describe() == {"kind": "formula", "formula": "a*t**2 + b*t + c", "inputs": ["t"]}


def test_explicit_inputs_override_columns_and_set_the_column_order():
    m = FormulaModel(compile_formula(" a*x + b*z "), columns=["x"], inputs=["z", "x"])
    assert m.inputs == ("z", "x") and m.param_names == ("a", "b") and m.name == "a*x + b*z"
    x = torch.tensor([[1.0, 10.0], [2.0, 20.0]])  # column 0 is z, column 1 is x
    out = m({"a": torch.tensor(2.0), "b": torch.tensor(3.0)}, x)
    torch.testing.assert_close(out, 2.0 * x[:, 1] + 3.0 * x[:, 0])


def test_model_construction_errors():
    with pytest.raises(ModelError, match=r"input 'w' does not occur.*names are: a, x, b"):
        FormulaModel("a*x + b", inputs=["x", "w"])
    with pytest.raises(ModelError, match=r"no free parameter to fit; names that are data columns are inputs: x"):
        FormulaModel("x**2 + 1", columns=["x", "y"])
    with pytest.raises(FormulaError, match="unknown function 'open'"):
        FormulaModel("open(x)", columns=["x"])


@pytest.mark.parametrize("text", ["k", "a*sum(x)", "a*x + b"])
def test_forward_returns_one_value_per_row_and_keeps_gradients(text):
    m = FormulaModel(text, columns=["x"])
    x = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None] if m.inputs else torch.zeros(5, 0, dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in m.init_params(dtype=torch.float64).items()}
    out = m(params, x)
    assert out.shape == (5,) and out.dtype == torch.float64
    grads = torch.autograd.grad(out.sum(), list(params.values()))
    assert all(torch.isfinite(g) and g != 0 for g in grads)


def test_forward_refuses_x_of_the_wrong_shape():
    m = FormulaModel("a*t + b", columns=["t"])
    with pytest.raises(ModelError, match=r"expects x of shape \(n, 1\).*Got shape \(4,\)"):
        m(m.init_params(), torch.zeros(4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roller_coaster_formula_matches_hand_computation(dtype):
    m = FormulaModel("a*t**2 + b*t + c", columns=["t", "speed"])
    t = torch.arange(0, 20, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(3, generator=g, dtype=torch.float64).to(dtype)
    out = m({"a": a, "b": b, "c": c}, t[:, None])
    assert out.dtype == dtype
    torch.testing.assert_close(out, a * (t**2) + (b * t) + c)
    # the Jacobian Levenberg-Marquardt takes, against the derivatives by hand
    jac = jacrev(lambda p: m(p, t[:, None]))({"a": a, "b": b, "c": c})
    torch.testing.assert_close(jac["a"], t**2)
    torch.testing.assert_close(jac["b"], t)
    torch.testing.assert_close(jac["c"], torch.ones_like(t))


def test_vmap_over_parameters_as_in_a_learning_rate_sweep():
    m = FormulaModel("b1*(1-exp(-b2*x))", columns=["x"])
    x = X[:, None]
    b1, b2 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    out = vmap(lambda p: m(p, x))({"b1": b1, "b2": b2})
    torch.testing.assert_close(out, b1[:, None] * (1 - torch.exp(-b2[:, None] * X[None, :])))
    const = FormulaModel("k")
    torch.testing.assert_close(
        vmap(lambda p: const(p, torch.zeros(4, 0)))({"k": b1.float()}), b1.float()[:, None].expand(3, 4)
    )


def test_model_pickles():
    m = FormulaModel("a*t + b", columns=["t"])
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.inputs == ("t",) and m2.param_names == ("a", "b")
    x = torch.arange(3.0)[:, None]
    torch.testing.assert_close(m2(m2.init_params(), x), m(m.init_params(), x))


def test_a_formula_using_e_says_it_is_eulers_number_not_a_parameter():
    import warnings

    import numpy as np

    import gradfit

    assert compile_formula("a*exp(x) + e*cos(x) + pi").constants == ("e", "pi")
    x = np.linspace(0, 1, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = gradfit.fit("a + e*x", {"x": x, "y": 1 + 2 * x}, y="y")
    assert list(r.flat_params) == ["a"]
    assert any("e is Euler's number" in n for n in r.data["notes"])
    r = gradfit.fit("a + b*x", {"x": x, "y": 1 + 2 * x}, y="y")
    assert not any("Euler" in n for n in r.data["notes"])


def test_a_formula_is_compiled_once_per_text_and_a_bad_one_refused_every_time():
    text = "a*exp(-b*x) + c"
    first = compile_formula(text)
    assert compile_formula(text) is first  # the parse is not repeated
    assert compile_formula(text + " ") is not first and compile_formula(text + " ").names == first.names
    x = torch.linspace(0, 1, 5, dtype=torch.float64)
    got = first.evaluate({"a": 2.0, "b": 1.0, "c": 0.5, "x": x}, dtype=torch.float64)
    torch.testing.assert_close(got, 2.0 * torch.exp(-x) + 0.5, rtol=1e-15, atol=0)
    for _ in range(2):  # errors are not cached away
        with pytest.raises(FormulaError):
            compile_formula("a*(x + ")

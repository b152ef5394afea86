"""The formula compiler under attack: random valid formulas against a reference interpreter, random hostile
text refused, and proof that nothing the user wrote was executed or imported.

Hypothesis runs derandomized (the same examples on every run, so CI is reproducible); the examples add
up to more than 10,000 (see ``EXAMPLES``).
"""

from __future__ import annotations

import builtins
import math
import sys
import uuid

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradfit.errors import FormulaError
from gradfit.models.formula import MAX_DEPTH, compile_formula
from gradfit.models.formula_functions import FUNCTIONS

EXAMPLES = {"valid": 1500, "hostile": 3000, "text": 2500, "formula_text": 3000}  # 10,000 in all
assert sum(EXAMPLES.values()) >= 10_000


def _settings(name: str):
    return settings(
        max_examples=EXAMPLES[name],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# -- the grammar and a reference interpreter over the same tree --------------------------------

# Written independently of formula_functions: the test checks the table, not copies it.
REFERENCE = {
    "exp": torch.exp,
    "log": torch.log,
    "log10": torch.log10,
    "log2": torch.log2,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "arcsin": torch.asin,
    "asin": torch.asin,
    "arccos": torch.acos,
    "acos": torch.acos,
    "arctan": torch.atan,
    "atan": torch.atan,
    "arctan2": torch.atan2,
    "atan2": torch.atan2,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "erf": torch.erf,
    "relu": torch.relu,
    "minimum": torch.minimum,
    "min": torch.minimum,
    "maximum": torch.maximum,
    "max": torch.maximum,
    "pow": torch.pow,
    "sum": torch.sum,
    "mean": torch.mean,
}
ARITY = {
    name: 2 if name in ("arctan2", "atan2", "minimum", "min", "maximum", "max", "pow") else 1 for name in REFERENCE
}
OPS = {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div, "**": torch.pow}
CONSTANTS = {"pi": math.pi, "e": math.e}
NAMES = ("a", "b", "c", "x")
X = torch.linspace(0.1, 2.0, 7, dtype=torch.float64)
ENV = {
    "a": torch.tensor(0.7, dtype=torch.float64),
    "b": torch.tensor(1.3, dtype=torch.float64),
    "c": torch.tensor(-0.4, dtype=torch.float64),
    "x": X,
}


def test_the_reference_covers_exactly_the_whitelist():
    assert set(REFERENCE) == set(FUNCTIONS)
    assert all(FUNCTIONS[n].arity == ARITY[n] for n in FUNCTIONS)


# Numbers as a formula may write them: (text, value).
_numbers = st.sampled_from(
    [
        ("0", 0.0),
        ("1", 1.0),
        ("2", 2.0),
        ("3", 3.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("1.5", 1.5),
        ("15e-1", 1.5),
        ("2.0", 2.0),
        ("1E1", 10.0),
        ("0.25", 0.25),
        ("1_0", 10.0),
    ]
)
_leaves = st.one_of(
    _numbers.map(lambda n: ("num", n[0], n[1])),
    st.sampled_from(NAMES).map(lambda n: ("name", n)),
    st.sampled_from(sorted(CONSTANTS)).map(lambda n: ("const", n)),
)


def _extend(children):
    return st.one_of(
        st.tuples(st.just("bin"), st.sampled_from(sorted(OPS)), children, children),
        st.tuples(st.just("neg"), children),
        st.tuples(st.just("pos"), children),
        st.sampled_from(sorted(n for n in REFERENCE if ARITY[n] == 1)).flatmap(
            lambda f: st.tuples(st.just("call"), st.just(f), st.tuples(children))
        ),
        st.sampled_from(sorted(n for n in REFERENCE if ARITY[n] == 2)).flatmap(
            lambda f: st.tuples(st.just("call"), st.just(f), st.tuples(children, children))
        ),
    )


trees = st.recursive(_leaves, _extend, max_leaves=12)
small_trees = st.recursive(_leaves, _extend, max_leaves=4)  # the valid part around hostile text
_space = st.sampled_from(["", " ", "  "])


def render(tree, data) -> str:
    """The formula text for ``tree``: fully parenthesised, with random spacing and redundant brackets."""
    kind = tree[0]
    if kind in ("num", "name", "const"):
        text = tree[1]
    elif kind == "bin":
        sp = data.draw(_space)
        text = f"({render(tree[2], data)}){sp}{tree[1]}{sp}({render(tree[3], data)})"
    elif kind in ("neg", "pos"):
        text = f"{'-' if kind == 'neg' else '+'}({render(tree[1], data)})"
    else:
        text = f"{tree[1]}({', '.join(render(arg, data) for arg in tree[2])})"
    return f"({text})" if data.draw(st.integers(0, 9)) == 0 else text


def reference(tree) -> torch.Tensor:
    """The value of ``tree`` computed directly in torch, in float64."""
    kind = tree[0]
    if kind == "num":
        return torch.tensor(tree[2], dtype=torch.float64)
    if kind == "name":
        return ENV[tree[1]]
    if kind == "const":
        return torch.tensor(CONSTANTS[tree[1]], dtype=torch.float64)
    if kind == "bin":
        return OPS[tree[1]](reference(tree[2]), reference(tree[3]))
    if kind == "neg":
        return torch.neg(reference(tree[1]))
    if kind == "pos":
        return reference(tree[1])
    return REFERENCE[tree[1]](*(reference(arg) for arg in tree[2]))


def names_in_order(tree, out: list) -> list:
    kind = tree[0]
    if kind == "name" and tree[1] not in out:
        out.append(tree[1])
    for child in tree[1:]:
        if (
            isinstance(child, tuple)
            and child
            and isinstance(child[0], str)
            and child[0] in ("num", "name", "const", "bin", "neg", "pos", "call")
        ):
            names_in_order(child, out)
        elif isinstance(child, tuple):
            for arg in child:
                names_in_order(arg, out)
    return out


@_settings("valid")
@given(tree=trees, data=st.data())
def test_random_valid_formulas_compile_and_match_the_reference(tree, data):
    text = render(tree, data)
    f = compile_formula(text)
    assert f.names == tuple(names_in_order(tree, [])), text
    with torch.no_grad():
        want = reference(tree)
        got = f.evaluate({n: ENV[n] for n in f.names}, dtype=torch.float64)
    assert got.dtype == torch.float64
    want = want.expand_as(got) if want.shape != got.shape else want
    assert got.shape == want.shape, text
    both = torch.isfinite(got) & torch.isfinite(want)
    torch.testing.assert_close(got[both], want[both], rtol=1e-12, atol=1e-300, msg=text)
    assert torch.equal(torch.isnan(got), torch.isnan(want)), text  # the same ops, so the same NaNs


# -- hostile text ---------------------------------------------------------------------------

_atoms = st.sampled_from(["x", "a", "(a*x)", "exp(x)", "(1)", "(2.5)"])
# Each hostile construct with the refusal it must get; the placeholder {0} is an atom.
HOSTILE_EXPRESSIONS = [
    ("{0}.real", r"attribute access \('\.real'\)"),
    ("{0}.__class__", r"attribute access \('\.__class__'\)"),
    ("().__class__.__bases__[0].__subclasses__()", r"attribute access|lists, tuples"),
    ("{0}.__class__.__mro__", r"attribute access \('\.__class__'\)"),
    ("{0}[0]", r"indexing or slicing"),
    ("{0}[1:2]", r"indexing or slicing"),
    ("open('/etc/passwd')", r"unknown function 'open'"),
    ("eval('{0}')", r"unknown function 'eval'"),
    ("exec('import os')", r"unknown function 'exec'"),
    ("__import__('os')", r"unknown function '__import__'"),
    ("getattr({0}, 'real')", r"unknown function 'getattr'"),
    ("compile('1', '', 'eval')", r"unknown function 'compile'"),
    ("globals()", r"unknown function 'globals'"),
    ("vars()", r"unknown function 'vars'"),
    ("breakpoint()", r"unknown function 'breakpoint'"),
    ("type({0})", r"unknown function 'type'"),
    ("os({0})", r"unknown function 'os'"),
    ("exp.__call__({0})", r"attribute access \('\.__call__'\)"),
    ("(lambda: {0})()", r"only allowed functions can be called|lambda"),
    ("(lambda q: q)", r"lambda functions are not allowed"),
    ("[q for q in {0}]", r"comprehensions are not allowed"),
    ("sum(q for q in {0})", r"comprehensions are not allowed"),
    ("{{q: q for q in {0}}}", r"comprehensions are not allowed"),
    ("__builtins__", r"names starting with '_'"),
    ("__x__ * {0}", r"names starting with '_'"),
    ("f'{{{0}}}'", r"strings are not allowed"),
    ("'abc'", r"strings are not allowed"),
    ("b'abc'", r"strings are not allowed"),
    ("(q := {0})", r"assignment expressions \(:=\)"),
    ("exp(*{0})", r"starred arguments"),
    ("exp(x={0})", r"keyword arguments are not allowed"),
    ("exp(**{0})", r"keyword arguments are not allowed"),
    ("({0} if {0} else {0})", r"conditional expressions"),
    ("({0} < {0})", r"comparisons"),
    ("({0} or {0})", r"boolean operators"),
    ("(not {0})", r"the operator 'not'"),
    ("[{0}]", r"lists, tuples, sets and dicts"),
    ("({0}, {0})", r"lists, tuples, sets and dicts"),
    ("...", r"Ellipsis is not allowed"),
    ("None", r"None is not allowed"),
    ("{0} // 2", r"the operator '//'"),
    ("1j", r"complex numbers"),
    ("(yield {0})", r"Yield expressions are not allowed|not a valid expression"),
    ("(await {0})", r"Await expressions are not allowed|not a valid expression"),
]
HOSTILE_STATEMENTS = [
    "import os",
    "from os import system",
    "q = {0}",
    "{0}; {0}",
    "del x",
    "global x",
    "{0}\nimport os",
    "with open('f') as q: {0}",
    "def f(): return {0}",
    "class A: pass",
    "raise SystemExit",
    "assert {0}",
    "for q in x: pass",
    "q += {0}",
    "exec 'x'",
    "print 'x'",
]
_contexts = st.sampled_from(
    [
        "{h}",
        "{v} + {h}",
        "{h} * ({v})",
        "exp({h})",
        "({v}) - ({h})",
        "atan2({v}, {h})",
        "-({h})",
        "({h})**2",
        "sum({h})",
    ]
)
_statement_contexts = st.sampled_from(["{h}", "{v}; {h}", "{h}; {v}", "{v}\n{h}"])


@_settings("hostile")
@given(data=st.data())
def test_hostile_constructs_mixed_into_valid_formulas_are_refused(data):
    valid = render(data.draw(small_trees), data)
    atom = data.draw(_atoms)
    if data.draw(st.integers(0, 3)) == 0:
        hostile, message = data.draw(st.sampled_from(HOSTILE_STATEMENTS)).format(atom), "not a valid expression"
        text = data.draw(_statement_contexts).format(h=hostile, v=valid)
    else:
        template, message = data.draw(st.sampled_from(HOSTILE_EXPRESSIONS))
        text = data.draw(_contexts).format(h=template.format(atom), v=valid)
    with pytest.raises(FormulaError, match=message) as info:
        compile_formula(text)
    err = info.value
    assert err.offset is None or 0 <= err.offset <= len(text)


@_settings("text")
@given(text=st.text(max_size=60))
def test_arbitrary_text_compiles_or_is_refused_cleanly(text):
    _compile_or_refuse(text)


@_settings("formula_text")
@given(text=st.text(alphabet="ax_()[]{}+-*/%.,:;=<>!'\"\\ \n\r\t0123456789eEjlambdopnrtfis#@~^|&", max_size=40))
def test_formula_like_text_compiles_or_is_refused_cleanly(text):
    _compile_or_refuse(text)


def _compile_or_refuse(text: str) -> None:
    try:
        f = compile_formula(text)
    except FormulaError as err:
        str(err)  # renders (caret line included) without failing
        assert err.offset is None or 0 <= err.offset <= len(text)
        return
    assert all(n.isidentifier() and not n.startswith("_") and n not in FUNCTIONS for n in f.names)


# -- nothing executed, nothing imported ------------------------------------------------------


def test_hostile_strings_that_would_write_files_leave_no_file(tmp_path):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    attacks = [
        f"open('{marker}', 'w')",
        f"__import__('os').system('touch {marker}')",
        f"__import__('pathlib').Path('{marker}').touch()",
        f"(lambda: open('{marker}', 'w'))()",
        f"[open('{marker}', 'w') for q in [1]]",
        f"f\"{{open('{marker}', 'w')}}\"",
        f"x + exec(\"open('{marker}', 'w')\")",
        f"exp(eval(\"open('{marker}', 'w')\"))",
        f"().__class__.__base__.__subclasses__()[0]('{marker}')",
        f"a*x; open('{marker}', 'w')",
        f"(q := open('{marker}', 'w'))",
    ]
    for text in attacks:
        with pytest.raises(FormulaError):
            compile_formula(text)
        assert not marker.exists(), text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module", ["antigravity", "this", "webbrowser", "ctypes.util"])
def test_hostile_strings_import_nothing(monkeypatch, module):
    for name in (module, "antigravity", "this"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    before = set(sys.modules)
    for text in [
        f"__import__('{module}')",
        f"exp(__import__('{module}'))",
        f"x + __import__('{module}').x",
        f"import {module}",
        f"[__import__('{module}') for q in x]",
    ]:
        with pytest.raises(FormulaError):
            compile_formula(text)
    assert module not in sys.modules and "antigravity" not in sys.modules and "this" not in sys.modules
    assert set(sys.modules) - before == set()


# One formula per allowed function, plus constants and every operator.
WARM = [f"{n}(a*x + 1.5)" if ARITY[n] == 1 else f"{n}(a*x + 1.5, b)" for n in sorted(REFERENCE)] + [
    "a*x**2 + b*x - c/x + pi - e + -(+x)",
    "b1*(1-exp(-b2*x))",
]


def test_compile_and_evaluate_run_no_eval_exec_bytecode_or_import():
    env = {"a": 0.5, "b": 0.25, "c": 2.0, "b1": 1.0, "b2": 0.5, "x": torch.linspace(0.1, 0.9, 5)}
    for text in WARM:  # warm up torch's own lazy imports before the trap is set
        compile_formula(text).evaluate({k: env[k] for k in compile_formula(text).names})
    calls = []

    def refuse(name):
        def trap(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called")

        return trap

    real_compile = builtins.compile

    def ast_only(source, filename, mode, flags=0, *args, **kwargs):
        # ast.parse goes through compile() with PyCF_ONLY_AST: a syntax tree, never bytecode.
        if not flags & 0x400:  # ast.PyCF_ONLY_AST
            calls.append("compile")
            raise AssertionError("compile to bytecode was called")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    real_import = builtins.__import__

    def loaded_only(name, globals=None, locals=None, fromlist=(), level=0):
        # The standard library re-imports what is loaded (ast.walk: from collections import deque); a module
        # that is not loaded yet would be code running for the first time.
        if level == 0 and name in sys.modules:
            return real_import(name, globals, locals, fromlist, level)
        calls.append(f"import {name}")
        raise AssertionError(f"import of {name} was attempted")

    traps = {"eval": refuse("eval"), "exec": refuse("exec"), "__import__": loaded_only, "compile": ast_only}
    saved = {name: getattr(builtins, name) for name in traps}
    outs, refused = [], []
    # Set by hand and undone in `finally` with nothing in between that may import (pytest.raises would).
    try:
        for name, trap in traps.items():
            setattr(builtins, name, trap)
        for text in WARM:
            f = compile_formula(text)
            outs.append(f.evaluate({k: env[k] for k in f.names}))
        for text in ["__import__('os')", "open('x')", "eval('1')", "x.__class__"]:
            try:
                compile_formula(text)
            except FormulaError:
                refused.append(text)
    finally:
        for name, original in saved.items():
            setattr(builtins, name, original)
    assert len(refused) == 4
    assert calls == []
    assert all(isinstance(o, torch.Tensor) for o in outs)


# -- limits instead of RecursionError ------------------------------------------------------

LIMIT = r"at most [\d,]+ (characters|parts|levels|are allowed)|deeper than 100|too deeply nested or too large"


@pytest.mark.parametrize(
    "text",
    [
        "-" * 10_000 + "x",
        "-" * 9_999 + "x",
        "-" * 5_000 + "x",
        "-" * 300 + "x",
        "+" * 5_000 + "x",
        "-+" * 2_500 + "x",
        "not " * 2_000 + "x",
        "~" * 5_000 + "x",
        "x" + "**x" * 3_000,
        "x" + "**x" * 150,
        "x" + "**-x" * 150,
        "exp(" * 2_000 + "x" + ")" * 2_000,
        "exp(-" * 150 + "x" + ")" * 150,
        "atan2(x, " * 150 + "x" + ")" * 150,
        "(" * 5_000 + "x" + ")" * 5_000,
        "(" * 5_000 + "x",
        "[" * 3_000 + "x" + "]" * 3_000,
        "x*(" * 500 + "x" + ")" * 500,
        "lambda: " * 1_000 + "x",
        "x" + "+x" * 4_000,
        "x+" * 10_000 + "x",
        "1" * 5_000,
    ],
    ids=lambda t: f"{t[:12]}...{len(t)}",
)
def test_deep_or_huge_formulas_hit_a_clear_limit(text):
    with pytest.raises(FormulaError, match=LIMIT + "|more than 4,300 digits"):
        compile_formula(text)


@pytest.mark.parametrize("text", ["-" * (MAX_DEPTH - 2) + "x", "exp(" * (MAX_DEPTH - 1) + "x" + ")" * (MAX_DEPTH - 1)])
def test_nesting_just_inside_the_limit_compiles(text):
    assert compile_formula(text).names == ("x",)


def test_limits_hold_with_a_small_recursion_limit():
    # The checks must not rely on Python's own stack: with a tight limit they still give FormulaError.
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        for text in ["-" * 5_000 + "x", "exp(" * 500 + "x" + ")" * 500, "x" + "**x" * 900]:
            with pytest.raises(FormulaError, match=LIMIT):
                compile_formula(text)
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.parametrize(
    "text, message",
    [
        ("(a\r+x.y)", r"attribute access \('\.y'\)"),  # '\r' ends a line for the parser; offsets must follow
        ("(a\r\n+\rx[0])", r"indexing or slicing"),
        ("a*x\udce9", r"not valid text \(U\+DCE9, at offset 3"),  # a non-UTF-8 byte from argv
    ],
)
def test_line_ends_and_surrogates_give_formula_errors(text, message):
    with pytest.raises(FormulaError, match=message) as info:
        compile_formula(text)
    assert "\udce9" not in str(info.value)  # the message can be printed

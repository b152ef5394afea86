"""Backquoted names in formulas: columns with spaces or symbols, against torch written by hand."""

from __future__ import annotations

import pickle

import pytest
import torch

from gradfit.errors import FormulaError
from gradfit.models.formula import compile_formula
from gradfit.models.formula_model import FormulaModel

X = torch.linspace(0.1, 0.9, 5, dtype=torch.float64)


def test_backquoted_names_are_variables_and_evaluate_like_torch():
    f = compile_formula("a*`body mass` + b*`CO2 (ppm)`**2 - `exp` + `Körper-größe`/`body mass`")
    assert f.names == ("a", "body mass", "b", "CO2 (ppm)", "exp", "Körper-größe")
    v = {"a": 0.7, "body mass": X, "b": 1.3, "CO2 (ppm)": X + 1, "exp": 2.0, "Körper-größe": X * 3}
    expected = 0.7 * X + 1.3 * (X + 1) ** 2 - 2.0 + (X * 3) / X
    torch.testing.assert_close(f.evaluate(v), expected, rtol=0, atol=0)


def test_gradient_through_a_backquoted_parameter_equals_autograd_by_hand():
    f = compile_formula("`my rate`*x + `off set`")
    rate = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    off = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    f.evaluate({"my rate": rate, "x": X, "off set": off}).sum().backward()
    assert rate.grad.item() == pytest.approx(X.sum().item()) and off.grad.item() == pytest.approx(len(X))


def test_the_same_name_with_and_without_backquotes_is_one_variable():
    f = compile_formula("a*`x` + x + `x`")
    assert f.names == ("a", "x")
    torch.testing.assert_close(f.evaluate({"a": 2.0, "x": X}), 4 * X)


def test_spans_point_at_the_names_as_written():
    text = "a*`body mass` + bpp"
    f = compile_formula(text)
    assert f.spans["body mass"] == (2, len("`body mass`")) and f.spans["bpp"] == (text.index("bpp"), 3)


def test_pickle_and_the_model_keep_the_backquotes():
    f = pickle.loads(pickle.dumps(compile_formula("a*`body mass` + b")))
    assert f.names == ("a", "body mass", "b")
    m = FormulaModel("a*`body mass` + b", columns=["body mass", "y"])
    assert m.inputs == ("body mass",) and m.param_names == ("a", "b")
    out = m({"a": torch.tensor(2.0, dtype=torch.float64), "b": torch.tensor(1.0, dtype=torch.float64)}, X[:, None])
    torch.testing.assert_close(out, 2 * X + 1)


@pytest.mark.parametrize(
    "text,message,offset,length",
    [
        ("a*`body mass + b", "backquote is not closed", 2, 1),
        ("a*`` + b", "empty backquotes", 2, 2),
        ("2`x`", "must stand on its own; write an operator before it", 0, 1),
        ("a`x` + b", "must stand on its own; write an operator before it", 0, 1),
        ("`x`b", "write an operator after it", 3, 1),
        ("`x`(2)", "is a name, not a function", 0, 3),
        ("a*`Körper größe` + b^2", r"'\^' is not a power operator", 20, 1),  # carets stay right after non-ASCII names
        ("a*`x\ny` + b", "backquote is not closed", 2, 1),
    ],
)
def test_bad_backquotes_get_a_caret_under_the_mistake(text, message, offset, length):
    with pytest.raises(FormulaError, match=message) as info:
        compile_formula(text)
    assert (info.value.offset, info.value.length) == (offset, length)

"""Formula names that would silently change meaning are refused, unless declared parameters.

Oracle for the fits that go through: numpy's least squares on the model the names say.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gradfit
from gradfit.errors import DataError, FormulaError, ModelError

RNG = np.random.default_rng(3)
N = 40
BMI, BP = RNG.normal(25, 4, N), RNG.normal(90, 10, N)
Y = 3.0 * BMI + 0.5 * BP + 7 + RNG.normal(0, 0.5, N)
FRAME = pd.DataFrame({"bmi": BMI, "bp": BP, "y": Y})
LSQ = dict(optimizer="lbfgs", dtype="float64", steps=100)


def _lstsq(*cols):
    return np.linalg.lstsq(np.column_stack(cols), Y, rcond=None)[0]


@pytest.mark.parametrize(
    "formula,name,column,how",
    [
        ("a*bmi + b*bpp + c", "bpp", "bp", "one edit"),
        ("a*BMI + b", "BMI", "bmi", "differs only in case"),
        ("a*bmi + b*Bp + c", "Bp", "bp", "differs only in case"),
    ],
)
def test_a_misspelt_column_is_refused_with_did_you_mean_and_a_caret(formula, name, column, how):
    with pytest.raises(FormulaError) as info:
        gradfit.fit(formula, FRAME, y="y", **LSQ)
    text = str(info.value)
    assert f"'{name}' is not a column" in text and how in text and f"Did you mean '{column}'?" in text
    assert f"--param {name}" in text and f"params=[{name!r}]" in text and f"--init {name}=VALUE" in text
    caret = text.splitlines()[-1].strip()
    assert info.value.offset == formula.index(name) and caret == "^" * len(name)


def test_every_misspelling_is_named_in_one_message():
    with pytest.raises(FormulaError, match=r"2 names that would change meaning: 'BMI' .* 'bpp' "):
        gradfit.fit("a*BMI + b*bpp", FRAME, y="y", **LSQ)


@pytest.mark.parametrize("declare", [{"params": ["bpp"]}, {"params": "bpp"}, {"init": {"bpp": 0.0}}])
def test_a_declared_parameter_is_fitted_as_one(declare):
    # 'bpp' declared: an intercept, so the fit is least squares on [bmi, 1].
    r = gradfit.fit("a*bmi + bpp", FRAME, y="y", **declare, **LSQ)
    assert r.data["x"] == ["bmi"]
    np.testing.assert_allclose([r.flat_params["a"], r.flat_params["bpp"]], _lstsq(BMI, np.ones(N)), rtol=1e-7)


def test_a_declared_name_that_is_a_column_is_a_parameter_not_an_input():
    frame = FRAME.assign(b=np.arange(N, dtype=float))  # a column named like the parameter
    r = gradfit.fit("a*bmi + b", frame, y="y", params=["b"], **LSQ)
    assert r.data["x"] == ["bmi"] and r.model.param_names == ("a", "b")
    np.testing.assert_allclose([r.flat_params["a"], r.flat_params["b"]], _lstsq(BMI, np.ones(N)), rtol=1e-7)
    r2 = gradfit.fit("a*bmi + b", frame, y="y", **LSQ)  # undeclared, the column is an input
    assert r2.data["x"] == ["bmi", "b"]


@pytest.mark.parametrize(
    "formula,columns",
    [
        ("a*x1 + b", ["x1", "y"]),  # one-letter parameters next to a column x1
        ("a*ab + b", ["ab", "y"]),  # ... and next to a column ab
        ("b1*(1 - exp(-b2*x1))", ["x1", "y"]),  # NIST style names next to x1
        ("L/(1 + exp(-k*(t - x0))) + c", ["t", "x", "y"]),  # x0 next to x
    ],
)
def test_short_parameter_names_are_not_taken_for_columns(formula, columns):
    t = np.linspace(0.1, 3, 30)
    frame = pd.DataFrame({c: t if c != "y" else 2 * t + 1 for c in columns})
    r = gradfit.fit(formula, frame, y="y", optimizer="lbfgs", dtype="float64", steps=5)
    assert set(r.model.param_names) | set(r.data["x"]) == set(gradfit.compile_formula(formula).names)


def test_the_target_in_a_formula_is_refused():
    with pytest.raises(
        FormulaError,
        match=r"'y' is the target column \(y\), the values the model predicts, so the "
        r"formula cannot also read it as an input\. Did you mean bmi or bp\? If 'y' "
        r"is meant to be a parameter \(not the column\), declare it a parameter: "
        r"--param y",
    ):
        gradfit.fit("a*bmi + y", FRAME, y="y", **LSQ)


def test_the_target_as_the_only_input_suggests_the_columns_not_a_parameter():
    # issue 9, item 6: 'a*y+b' got a confusing message; with no input at all, declaring y a parameter
    # would leave a model without inputs, so only the columns are suggested.
    with pytest.raises(FormulaError) as info:
        gradfit.fit("a*y+b", FRAME, y="y", **LSQ)
    text = str(info.value)
    assert "'y' is the target column (y)" in text and "Did you mean bmi or bp?" in text
    assert "?." not in text and "--param" not in text and info.value.offset == 2


def test_a_formula_without_any_input_names_each_reason():
    with pytest.raises(ModelError) as info:
        gradfit.fit("a*pi + b", FRAME, y="y", **LSQ)
    text = str(info.value)
    assert "has no input column" in text and "pi is a constant of the formula language" in text
    assert "a, b are not columns and so parameters" in text and "one of the columns bmi, bp" in text


@pytest.mark.parametrize(
    "column,formula,means",
    [
        ("pi", "a*pi + b", "the constant pi = 3.14159"),
        ("e", "a*e + b", "the constant e = 2.71828"),
        ("exp", "a*exp + b", "the function exp(...)"),
        ("sum", "a*sum + b", "the function sum(...)"),
    ],
)
def test_a_column_named_like_a_constant_or_function_is_refused_unless_backquoted(column, formula, means):
    # issue 9, item 6: a column named pi fitted the constant silently; one named exp got "exp is a function"
    frame = pd.DataFrame({column: BMI, "y": 2.0 * BMI + 1})
    with pytest.raises(FormulaError) as info:
        gradfit.fit(formula, frame, y="y", **LSQ)
    text = str(info.value)
    assert f"'{column}' is a column of the data, but in a formula {column} is {means}" in text
    assert f"`{column}`" in text and info.value.offset == 2 and text.splitlines()[-1].strip() == "^" * len(column)
    r = gradfit.fit(f"a*`{column}` + b", frame, y="y", **LSQ)
    np.testing.assert_allclose(
        [r.flat_params["a"], r.flat_params["b"]],
        np.linalg.lstsq(np.column_stack([BMI, np.ones(N)]), 2.0 * BMI + 1, rcond=None)[0],
        rtol=1e-6,
        atol=1e-6,
    )


def test_a_function_call_on_a_column_named_like_the_function_is_the_function():
    frame = pd.DataFrame({"x": BMI / 10, "exp": BMI, "y": 2.0 * np.exp(BMI / 10) + 1})
    r = gradfit.fit("a*exp(x) + b", frame, y="y", **LSQ)
    np.testing.assert_allclose([r.flat_params["a"], r.flat_params["b"]], [2.0, 1.0], rtol=1e-6)


def test_a_column_left_out_of_x_is_refused_unless_declared():
    with pytest.raises(
        FormulaError,
        match=r"'bp' is a column of the data but not among the inputs given with --x "
        r"\(bmi\), so it would be fitted as a parameter\. Add it to --x",
    ):
        gradfit.fit("a*bmi + bp", FRAME, x="bmi", y="y", **LSQ)
    r = gradfit.fit("a*bmi + bp", FRAME, x="bmi", y="y", params=["bp"], **LSQ)
    np.testing.assert_allclose([r.flat_params["a"], r.flat_params["bp"]], _lstsq(BMI, np.ones(N)), rtol=1e-7)
    with pytest.raises(FormulaError, match=r"'bmi' is declared a parameter but also given as an input"):
        gradfit.fit("a*bmi + bp", FRAME, x="bmi", y="y", params=["bmi"], **LSQ)


def test_declared_names_must_be_parameters_of_the_model():
    with pytest.raises(ModelError, match=r"declares 'q', which does not occur in the formula as a parameter"):
        gradfit.fit("a*bmi + b", FRAME, y="y", params=["q"], **LSQ)
    with pytest.raises(
        ModelError,
        match=r"declares 'b', which does not name a parameter of the model 'linear'\. "
        r"Its parameters are: a\.",
    ):
        gradfit.fit("linear", FRAME, y="y", params=["b"], **LSQ)


@pytest.mark.parametrize(
    "role,kwargs", [("input (x)", {"x": "BMI"}), ("target (y)", {"y": "Y"}), ("input (x)", {"x": "bpp"})]
)
def test_x_and_y_get_the_same_did_you_mean(role, kwargs):
    with pytest.raises(
        DataError,
        match=rf"{role.replace('(', '[(]').replace(')', '[)]')} column '\w+' not found.* "
        r"Did you mean '(bmi|y|bp)'\?",
    ):
        gradfit.fit("linear", FRAME, **{"y": "y", **kwargs}, **LSQ)

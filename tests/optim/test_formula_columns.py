"""The formula Jacobian's columns (:func:`gradfit.train.formula_jacobian._product`) skip a leading ``1.0 *`` and
write the last product into the buffer: the columns must be, to the bit, the left-to-right products written out
(the plain loop, the oracle here), and autograd's to rounding, for every shape of factor list."""

from __future__ import annotations

import math

import pytest
import torch

from gradfit.models.formula_model import FormulaModel
from gradfit.train.formula_jacobian import _product, formula_jacobian

FORMULAS = [
    ("a*exp(-b*x) + c + d*x", {"a": 2.0, "b": 1.3, "c": 0.5, "d": -0.2}),
    ("a*sin(b*x + c)/(1 + d*x**2)", {"a": 1.5, "b": 2.0, "c": 0.3, "d": 0.4}),
    ("sqrt(a + x)*log1p(b*x) + tanh(c*x)*d", {"a": 1.2, "b": 0.7, "c": -0.5, "d": 3.0}),
    ("a**x * b + sigmoid(c*x - d)", {"a": 1.1, "b": 0.9, "c": 2.0, "d": 1.0}),
    ("-a*b*c*d + 3*a - x*0*d", {"a": 1.1, "b": -0.0, "c": 2.0, "d": 1.0}),
    ("a + 2*b + 0*x", {"a": 1.0, "b": 1.0}),
]


def plain(fj, params, x):
    """The columns as the plain loop multiplies them: ``number * f1 * f2 * ...``, then copied into the buffer."""
    from gradfit.models.formula import _Context

    with torch.no_grad():
        ctx = _Context(x.dtype, x.device)
        values = fj.derivative.leaves(params, x)
        fj.derivative.run(values, fj.forward, ctx)
        columns = torch.empty(len(fj.free), x.shape[0], dtype=x.dtype)
        for j, (number, rows, scalars, plan) in enumerate(fj.columns):
            if number is None:
                columns[j] = 0.0
                continue
            fj.derivative.run(values, plan, ctx)
            column = number
            for i in (*scalars, *rows):
                column = column * values[i]
            columns[j] = column
    return columns.T


@pytest.mark.parametrize("formula,point", FORMULAS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_columns_are_the_plain_products_to_the_bit_and_autograds(formula, point, dtype):
    names = list(point)
    model = FormulaModel(formula, inputs=["x"])
    fj = formula_jacobian(model, names)
    assert fj is not None
    x = torch.linspace(0.1, 3.0, 37, dtype=dtype)[:, None]
    params = {k: torch.tensor(v, dtype=dtype) for k, v in point.items()}
    _, J = fj(params, x)
    assert torch.equal(J, plain(fj, params, x))
    theta = torch.tensor([point[n] for n in names], dtype=torch.float64)
    auto = torch.autograd.functional.jacobian(
        lambda t: model(dict(zip(names, t.unbind())), x.double()).reshape(-1), theta
    )
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(J.double(), auto, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "number,factors",
    [
        (1.0, []),  # a constant column
        (2.5, []),
        (1.0, ["row"]),  # 1.0 * v is v
        (-1.0, ["row"]),
        (1.0, ["scalar"]),  # a 0-dim result broadcast on the copy
        (1.0, ["scalar", "row"]),
        (-1.0, ["scalar", "row", "row"]),  # the last product written into the buffer
        (1.0, [3.0, "row"]),  # a number among the factors
        (1.0, ["row32"]),  # another dtype: copied with a cast, as before
        (2.0, ["scalar", "row32"]),
        (1.0, ["int"]),  # an integer tensor is not a float's identity
    ],
)
def test_product_is_the_left_to_right_product(number, factors):
    n = 9
    pool = {
        "row": torch.tensor([0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 1e-310, 3.0], dtype=torch.float64),
        "scalar": torch.tensor(-0.75, dtype=torch.float64),
        "row32": torch.linspace(-1, 1, n, dtype=torch.float32),
        "int": torch.arange(n),
    }
    vals = [pool[f] if isinstance(f, str) else f for f in factors]
    expected = torch.empty(n, dtype=torch.float64)
    column = number
    for v in vals:
        column = column * v
    expected[:] = column
    out = torch.empty(n, dtype=torch.float64)
    _product(number, vals, out)
    assert out.view(torch.int64).tolist() == expected.view(torch.int64).tolist()  # bits, NaN and -0.0 included

"""What a Levenberg-Marquardt fit reuses instead of computing again: the mse at the final point (its own sum of
squares there, :meth:`LMStepper.final_loss`) and one :class:`FormulaJacobian` per formula and columns. Each must be
the number (or the object's output) computed afresh, and be left alone where it is not."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import gradfit
from gradfit.losses import get_loss
from gradfit.models.formula_model import FormulaModel
from gradfit.train import loop as loop_module
from gradfit.train.formula_jacobian import FormulaJacobian, formula_jacobian
from gradfit.train.objective import Objective

FORMULA = "a*exp(-b*x) + c + d*x"
START = {"a": 2.0, "b": 1.0, "c": 0.0, "d": 0.0}


def data(n: int) -> dict[str, np.ndarray]:
    x = np.linspace(0.0, 4.0, n)
    return {"x": x, "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + 0.05 * np.random.default_rng(1).standard_normal(n)}


@pytest.fixture
def passes(monkeypatch):
    """The loop's passes of the loss over the rows at the end (what the stepper's own number replaces)."""
    calls: list = []
    original = loop_module._Fit._loss

    def counted(self, rows):
        calls.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(loop_module._Fit, "_loss", counted)
    return calls


def fit(d, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gradfit.fit(FORMULA, d, y="y", init=START, optimizer="lm", uncertainty=False, **options)


def mean_loss(r, d, dtype=torch.float64, w=None) -> float:
    """The oracle: the mse of the fitted parameters by a pass of the loss over the rows."""
    ds = gradfit.as_dataset(d, y="y", dtype=dtype)
    objective = Objective(r.model, get_loss("mse"))
    return float(objective.value({k: v.to(dtype) for k, v in r.params.items()}, ds.x, ds.y, w))


@pytest.mark.parametrize(("n", "chunk_size"), [(20, None), (3000, None), (3000, 256)])
def test_the_final_loss_is_lms_sum_of_squares_and_a_fresh_pass_gives_the_same_number(passes, n, chunk_size):
    d = data(n)
    r = fit(d, **({} if chunk_size is None else {"chunk_size": chunk_size}))
    assert passes == []  # no pass over the rows at the end
    assert r.loss == pytest.approx(mean_loss(r, d), rel=1e-14, abs=0)
    assert r.loss == r.history.loss[-1]  # the history's last row is the same number


@pytest.mark.parametrize(
    "options",
    [{"dtype": "float32"}, {"weights": np.linspace(0.5, 2.0, 300)}, {"row_pass": "autograd"}],
    ids=["float32", "weighted", "autograd"],
)
def test_where_lm_does_not_sum_the_losss_numbers_the_loop_passes_over_the_rows(passes, options):
    d = data(300)
    r = fit(d, **options)
    assert passes == [300]
    assert np.isfinite(r.loss)


def test_the_formula_jacobian_is_built_once_per_formula_and_columns_and_equals_a_fresh_one():
    m = FormulaModel(FORMULA, inputs=["x"])
    first, again, other = formula_jacobian(m, ["a", "b"]), formula_jacobian(m, ["a", "b"]), formula_jacobian(m, ["b"])
    assert first is not None and first is again and other is not None and other is not first
    fresh = FormulaJacobian(first.derivative, ("a", "b"))
    x = torch.linspace(0, 4, 50, dtype=torch.float64)[:, None]
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in {"a": 2.5, "b": 1.3, "c": 0.5, "d": 0.2}.items()}
    for got, want in zip(first(p, x), fresh(p, x)):
        assert torch.equal(got, want)
    assert torch.equal(other(p, x)[1][:, 0], fresh(p, x)[1][:, 1])

"""The fused chunk pass of formula models (gradfit.train.fused_pass) agrees with the autograd row pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit.losses import get_loss
from gradfit.models.formula_model import FormulaModel
from gradfit.train import compiled_pass
from gradfit.train.compiled_pass import pays_back
from gradfit.train.fused_pass import fused_pass
from gradfit.train.objective import Objective
from helpers.checkpoints import assert_same_fit, decay_curve, fit_stopped_at

FORMULA = "a*exp(-b*t) + c"


@pytest.fixture(scope="module")
def curve():
    return decay_curve(300)


def objectives(text, loss, chunk_size=64):
    """The same objective twice: by autograd, and by the fused pass."""
    model = FormulaModel(text, columns=["t"])
    loss = get_loss(loss) if isinstance(loss, str) else loss
    plain, fused = Objective(model, loss, chunk_size), Objective(model, loss, chunk_size)
    params = {
        n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in zip(model.param_names, (1.7, 0.6, 0.2))
    }
    chunk_pass = fused_pass(model, loss, params)
    assert chunk_pass is not None
    fused.chunk_pass, fused.chunk_pass_name = chunk_pass, chunk_pass.name
    return plain, fused, params


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "bce"])
@pytest.mark.parametrize("weighted", [False, True])
def test_value_and_gradient_equal_autograd_over_chunks(loss, weighted):
    generator = torch.Generator().manual_seed(3)
    t = torch.linspace(0, 3, 1000, dtype=torch.float64)[:, None]
    y = 2 * torch.exp(-0.7 * t[:, 0]) + 0.3 + 0.05 * torch.randn(1000, generator=generator, dtype=torch.float64)
    if loss == "bce":
        y = (y > y.median()).double()
    w = torch.rand(1000, generator=generator, dtype=torch.float64) if weighted else None
    plain, fused, params = objectives(FORMULA, loss)
    trainable = ["a", "c"] if weighted else ["a", "b", "c"]  # a fixed b has no gradient asked for
    want_value, want = plain.value_and_grad(params, trainable, t, y, w)
    value, got = fused.value_and_grad(params, trainable, t, y, w)
    torch.testing.assert_close(value, want_value, rtol=1e-14, atol=0)
    for name, g, h in zip(trainable, got, want):
        torch.testing.assert_close(g, h, rtol=1e-12, atol=1e-15, msg=name)
    assert fused.describe() == ["fused formula"] and plain.describe() == ["autograd"]


def test_a_formula_without_columns_and_a_parameter_without_slope():
    """``a + 0*b``: one prediction for every row (broadcast), and b's gradient is an exact zero."""
    t = torch.linspace(0, 1, 50, dtype=torch.float64)[:, None]
    y = torch.sin(t[:, 0])
    model = FormulaModel("a + 0*b*t", columns=["t"])
    params = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in (("a", 0.3), ("b", 2.0))}
    objective = Objective(model, get_loss("mse"))
    want_value, want = objective.value_and_grad(params, ["a", "b"], t, y)
    objective.chunk_pass = fused_pass(model, get_loss("mse"), params)
    value, got = objective.value_and_grad(params, ["a", "b"], t, y)
    torch.testing.assert_close(value, want_value, rtol=1e-14, atol=0)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=0)


def test_models_and_losses_it_cannot_serve_keep_autograd(curve):
    loss = get_loss(lambda pred, target: ((pred - target) ** 4).mean())
    params = {n: torch.tensor(1.0) for n in "abc"}
    assert fused_pass(FormulaModel(FORMULA, columns=["t"]), loss, params) is None
    r = gradfit.fit(lambda t, a, b, c: a * torch.exp(-b * t) + c, curve, y="y", lr=0.05, steps=5, optimizer="sgd")
    assert r.diagnostics["row_pass"] == ["autograd"]


FITS = {
    "adam, full batch": dict(optimizer="adam", lr=0.05),
    "sgd, full batch": dict(optimizer="sgd", lr=0.1),
    "sgd, mini-batches": dict(optimizer="sgd", lr=0.05, batch_size=32, seed=4),
    "momentum, weights": dict(optimizer="momentum", lr=0.02, weights="w"),
    "adam, a fixed parameter": dict(optimizer="adam", lr=0.05, fix={"c": 0.3}),
    "adam, bounds": dict(optimizer="adam", lr=0.1, bounds={"b": (0.0, 0.65)}, init={"b": 0.5}),
    "adam, huber, chunks of 64": dict(optimizer="adam", lr=0.05, loss="huber", chunk_size=64),
}


@pytest.mark.parametrize("options", FITS.values(), ids=FITS)
def test_a_fit_through_the_fused_pass_equals_the_autograd_pass(curve, options):
    data = curve.assign(w=np.linspace(0.5, 2.0, len(curve)))
    common = dict(y="y", steps=200, dtype="float64", **options)
    fused = gradfit.fit(FORMULA, data, **common)
    plain = gradfit.fit(FORMULA, data, row_pass="autograd", **common)
    assert fused.diagnostics["row_pass"] == ["fused formula"]
    assert plain.diagnostics["row_pass"] == ["autograd"]
    assert fused.steps == plain.steps and fused.stop_reason == plain.stop_reason
    for name in plain.params:
        np.testing.assert_allclose(float(fused.params[name]), float(plain.params[name]), rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(fused.history["loss"], plain.history["loss"], rtol=1e-10)
    if "bounds" in options:
        assert float(fused.params["b"]) == 0.65  # held at the bound on both paths


def test_float32_agrees_to_float32_accuracy(curve):
    common = dict(y="y", steps=200, dtype="float32", optimizer="adam", lr=0.05)
    fused = gradfit.fit(FORMULA, curve, **common)
    plain = gradfit.fit(FORMULA, curve, row_pass="autograd", **common)
    assert fused.diagnostics["row_pass"] == ["fused formula"]
    for name in plain.params:
        assert fused.params[name].dtype == torch.float32
        np.testing.assert_allclose(float(fused.params[name]), float(plain.params[name]), rtol=1e-4, err_msg=name)


def test_an_overflowing_formula_stops_as_on_the_autograd_path():
    """``exp(a*t)`` with a large step overflows float32: both paths stop at the same step, with the same parameters."""
    t = np.linspace(0, 10, 200)
    data = pd.DataFrame({"t": t, "y": np.exp(0.6 * t)})
    common = dict(y="y", optimizer="sgd", lr=1e-4, steps=50, dtype="float32", init={"a": 0.5})
    fused = gradfit.fit("exp(a*t)", data, **common)
    plain = gradfit.fit("exp(a*t)", data, row_pass="autograd", **common)
    assert plain.stop_reason == "diverged"
    assert fused.diagnostics["row_pass"] == ["fused formula"]
    assert (fused.stop_reason, fused.steps, fused.message) == (plain.stop_reason, plain.steps, plain.message)
    assert torch.equal(fused.params["a"], plain.params["a"])


def test_resume_is_bit_exact_on_the_fused_pass(tmp_path, curve):
    common = dict(y="y", optimizer="adam", lr=0.05, steps=40, batch_size=64, seed=2, dtype="float64")
    full = gradfit.fit(FORMULA, curve, **common)
    assert full.diagnostics["row_pass"] == ["fused formula"]
    fit_stopped_at(13, tmp_path, FORMULA, curve, **common)
    resumed = gradfit.fit(FORMULA, curve, resume=tmp_path, **common)
    assert resumed.diagnostics["row_pass"] == ["fused formula"]
    assert_same_fit(resumed, full)


def test_only_fits_large_enough_to_win_a_compile_back_compile():
    assert not pays_back(10**6, 1000)  # 10^9 row-steps: seconds saved, a minute to compile
    assert not pays_back(100, 10**6)
    assert pays_back(10**7, 10**4)


@pytest.fixture
def always_compile(monkeypatch):
    """Every full-batch fit counts as large enough to compile."""
    monkeypatch.setattr(compiled_pass, "SAVED_PER_ROW_STEP", 1.0)


def test_a_failing_compiler_leaves_the_eager_fused_pass(curve, always_compile, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    common = dict(y="y", optimizer="adam", lr=0.05, steps=30, dtype="float64")
    fallback = gradfit.fit(FORMULA, curve, **common)
    assert fallback.diagnostics["row_pass"] == [
        "fused formula (torch.compile failed: RuntimeError: no C++ compiler found)"
    ]
    monkeypatch.setattr(compiled_pass, "SAVED_PER_ROW_STEP", 0.0)
    eager = gradfit.fit(FORMULA, curve, **common)
    assert eager.diagnostics["row_pass"] == ["fused formula"]
    assert_same_fit(fallback, eager)


def test_mini_batches_and_levenberg_marquardt_never_compile(curve, always_compile, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called")

    monkeypatch.setattr(torch, "compile", refuse)
    r = gradfit.fit(FORMULA, curve, y="y", optimizer="adam", lr=0.05, steps=5, batch_size=32)
    assert r.diagnostics["row_pass"] == ["fused formula"]
    r = gradfit.fit(FORMULA, curve, y="y", optimizer="lm", steps=5)
    assert "compiled formula" not in r.diagnostics["row_pass"]


def test_a_fit_served_by_sufficient_statistics_never_compiles(curve, always_compile, monkeypatch):
    """Steps on the statistics read no rows: a compile for the chunks would never be won back."""

    calls = []  # a compile that failed would still leave the statistics' row_pass: count the calls instead
    monkeypatch.setattr(compiled_pass, "_CACHE", {})  # nothing compiled before, nothing left for later tests
    monkeypatch.setattr(torch, "compile", lambda *args, **kwargs: calls.append(args) or args[0])
    r = gradfit.fit("a*t + b", curve, y="y", optimizer="sgd", lr=0.1, steps=50, dtype="float64")
    assert r.diagnostics["row_pass"] == ["sufficient_statistics"] and calls == []
    gradfit.fit(FORMULA, curve, y="y", optimizer="sgd", lr=0.1, steps=50, dtype="float64")
    assert len(calls) == 1  # the same settings compile where no statistics serve the rows


@pytest.mark.slow
def test_the_compiled_pass_equals_the_eager_fused_pass(curve, always_compile, monkeypatch):
    """A real compile (a minute of CPU): the same fit, to float64 rounding; the second fit reuses the compile."""
    common = dict(y="y", optimizer="adam", lr=0.05, steps=100, dtype="float64", weights="w")
    data = curve.assign(w=np.linspace(0.5, 2.0, len(curve)))
    compiled = gradfit.fit(FORMULA, data, **common)
    assert compiled.diagnostics["row_pass"] == ["compiled formula"]
    plain = gradfit.fit(FORMULA, data, row_pass="autograd", **common)
    for name in plain.params:
        np.testing.assert_allclose(float(compiled.params[name]), float(plain.params[name]), rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(compiled.history["loss"], plain.history["loss"], rtol=1e-10)
    monkeypatch.setattr(torch, "compile", None)  # the second fit of the same formula must not compile again
    again = gradfit.fit(FORMULA, data, **common)
    assert again.diagnostics["row_pass"] == ["compiled formula"]
    assert_same_fit(again, compiled)


@pytest.mark.parametrize("kind", ["whitened", "diagonal"])
def test_a_fit_on_scaled_parameters_takes_the_fused_pass(curve, kind):
    """scale=True: the descent runs on q with p = p0 + A q and the loss divided by a factor; same fit as autograd."""
    options = dict(bounds={"b": (0.0, 5.0)}) if kind == "diagonal" else {}  # bounds make the map diagonal
    formula = "a*t + b*t**2 + c" if kind == "whitened" else FORMULA  # linear in its parameters: whitened
    common = dict(y="y", optimizer="lbfgs", scale=True, steps=30, dtype="float64", loss="huber", **options)
    fused = gradfit.fit(formula, curve, **common)
    plain = gradfit.fit(formula, curve, row_pass="autograd", **common)
    assert fused.diagnostics["scaling"]["kind"] == kind
    assert fused.diagnostics["row_pass"] == ["fused formula"]
    assert fused.steps == plain.steps and fused.stop_reason == plain.stop_reason
    for name in plain.params:
        np.testing.assert_allclose(float(fused.params[name]), float(plain.params[name]), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(fused.history["loss"], plain.history["loss"], rtol=1e-10)


def test_levenberg_marquardt_reports_the_pass_its_own_jacobians_take(curve):
    """LM passes the rows itself (residuals and Jacobians) and asks the objective only for the start's loss: the
    row pass reported is its own, a formula's derivative, or autograd for a callable or with row_pass="autograd";
    never the fused pass it does not run."""
    r = gradfit.fit(FORMULA, curve, y="y", optimizer="lm", steps=5)
    assert r.diagnostics["row_pass"] == ["formula derivative"] == [r.diagnostics["lm"]["jacobian"]]
    plain = gradfit.fit(FORMULA, curve, y="y", optimizer="lm", steps=5, row_pass="autograd")
    assert plain.diagnostics["row_pass"] == ["autograd"] == [plain.diagnostics["lm"]["jacobian"]]
    function = gradfit.fit(lambda t, a, b, c: a * torch.exp(-b * t) + c, curve, y="y", optimizer="lm", steps=5)
    assert function.diagnostics["row_pass"] == ["autograd"]


def test_a_pass_that_says_its_rows_per_call_is_called_with_that_many_rows():
    """A compiled pass writes no row-length temporary, so it takes a million rows a call where the objective's
    chunk size (which bounds eager temporaries) would cut them into many small calls; the sums stay the same."""
    plain, fused, params = objectives(FORMULA, "mse", chunk_size=64)
    t = torch.linspace(0, 3, 1000, dtype=torch.float64)[:, None]
    y = 2 * torch.exp(-0.7 * t[:, 0]) + 0.3
    inner, calls = fused.chunk_pass, []

    def counting(params, trainable, x, y, w):
        calls.append(x.shape[0])
        return inner(params, trainable, x, y, w)

    fused.chunk_pass = counting
    fused.value_and_grad(params, ["a", "b", "c"], t, y)
    assert calls == [64] * 15 + [40]
    calls.clear()
    counting.rows_per_call = 300  # type: ignore[attr-defined]
    value, got = fused.value_and_grad(params, ["a", "b", "c"], t, y)
    assert calls == [300, 300, 300, 100]
    want_value, want = plain.value_and_grad(params, ["a", "b", "c"], t, y)
    torch.testing.assert_close(value, want_value, rtol=1e-14, atol=0)
    for g, h in zip(got, want):
        torch.testing.assert_close(g, h, rtol=1e-12, atol=1e-15)


@pytest.fixture
def counted_compile(monkeypatch):
    """torch.compile replaced by the identity, counting its calls (no minute of compiling in the fast suite)."""
    calls = []
    monkeypatch.setattr(compiled_pass, "_CACHE", {})
    monkeypatch.setattr(torch, "compile", lambda fn, *args, **kwargs: calls.append(fn) or fn)
    return calls


def test_row_pass_compiled_compiles_a_short_full_batch_fit(curve, counted_compile, monkeypatch):
    """row_pass="compiled": the compile a fit of a few steps would not win back by itself, asked for by the user;
    the pass is called with ROWS_PER_CALL rows, and the fit equals the eager fused one to rounding."""
    monkeypatch.setattr(compiled_pass.CompiledPass, "rows_per_call", 128)
    common = dict(y="y", optimizer="adam", lr=0.05, steps=20, dtype="float64")
    eager = gradfit.fit(FORMULA, curve, **common)
    assert eager.diagnostics["row_pass"] == ["fused formula"] and counted_compile == []
    compiled = gradfit.fit(FORMULA, curve, row_pass="compiled", **common)
    assert compiled.diagnostics["row_pass"] == ["compiled formula"] and len(counted_compile) == 1
    assert compiled.steps == eager.steps
    for name in eager.params:
        np.testing.assert_allclose(float(compiled.params[name]), float(eager.params[name]), rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(compiled.history["loss"], eager.history["loss"], rtol=1e-12)


def test_row_pass_compiled_keeps_the_faster_paths_and_compiles_only_full_batches(curve, counted_compile):
    """Asking for the compile does not take a model off its sufficient statistics, nor compile for mini-batches
    (their chunks change shape and rows every step); Levenberg-Marquardt never asks the objective for gradients."""
    linear = gradfit.fit("a*t + b", curve, y="y", optimizer="sgd", lr=0.1, steps=20, row_pass="compiled")
    assert linear.diagnostics["row_pass"] == ["sufficient_statistics"]
    batches = gradfit.fit(FORMULA, curve, y="y", optimizer="adam", steps=5, batch_size=32, row_pass="compiled")
    assert batches.diagnostics["row_pass"] == ["fused formula"]
    lm = gradfit.fit(FORMULA, curve, y="y", optimizer="lm", steps=5, row_pass="compiled")
    assert lm.diagnostics["row_pass"] == ["formula derivative"]
    assert counted_compile == []


def test_row_pass_says_its_choices_when_given_another():
    with pytest.raises(gradfit.GradfitError, match="'auto', 'compiled' or 'autograd'"):
        gradfit.fit(FORMULA, decay_curve(50), y="y", row_pass="compile")


@pytest.mark.slow
def test_the_compiled_pass_on_millions_of_float32_rows_equals_float64():
    """A real compile: float32 sums over a million rows a call (inductor sums in cascade), accumulated in float64
    across the calls, keep 10 sgd steps on 3·10^6 rows equal to the float64 autograd fit to 1e-5."""
    n = 3 * 10**6
    t = np.linspace(0.0, 3.0, n)
    data = pd.DataFrame({"t": t, "y": 2.0 * np.exp(-0.7 * t) + 0.3 + 0.02 * np.sin(40 * t)})
    common = dict(y="y", optimizer="sgd", lr=0.2, steps=10, init={"a": 1.5, "b": 0.5, "c": 0.1})
    compiled = gradfit.fit(FORMULA, data, dtype="float32", row_pass="compiled", **common)
    assert compiled.diagnostics["row_pass"] == ["compiled formula"]
    exact = gradfit.fit(FORMULA, data, dtype="float64", row_pass="autograd", **common)
    for name in exact.params:
        np.testing.assert_allclose(float(compiled.params[name]), float(exact.params[name]), rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(compiled.history["loss"], exact.history["loss"], rtol=1e-5)

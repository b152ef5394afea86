"""A fit on a row set (rows read chunk by chunk, never held as tensors) equals the same fit on the rows in memory.

:class:`tests.helpers.row_sets.HiddenRows` gives a Dataset's rows only through ``chunks()``: it has no ``x`` or
``y``, so any part of a fit that reached for them would fail these tests instead of passing silently.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from tests.helpers.row_sets import HiddenRows

import gradfit
from gradfit.data.convert import as_dataset
from gradfit.errors import ConfigError
from gradfit.rowpass import RowSet, evenly_spaced, reduce, rows_of

FORMULA = "a*exp(-b*x) + c + d*x"
START = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
pytestmark = pytest.mark.filterwarnings("ignore:Ran the full budget")


def decay(n: int, sigma: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 4.0, n)
    s = 0.02 + 0.1 * rng.random(n)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + s * rng.standard_normal(n)
    data = {"x": x, "y": y, "s": s}
    return as_dataset(data, x=["x"], y="y", dtype=torch.float64, sigma="s" if sigma else None)


def both(dataset, **options):
    """The fit on the rows in memory and on the same rows as a row set."""
    rows = HiddenRows(dataset)
    assert isinstance(rows, RowSet) and not hasattr(rows, "x")
    return gradfit.fit(FORMULA, dataset, y="y", init=START, **options), gradfit.fit(
        FORMULA, rows, y="y", init=START, **options
    )


def same(a, b, rtol=0.0):
    assert a.stop_reason == b.stop_reason and a.steps == b.steps
    for name, value in a.flat_params.items():
        assert b.flat_params[name] == pytest.approx(value, rel=rtol, abs=0.0 if rtol == 0 else 1e-300)
    assert b.loss == pytest.approx(a.loss, rel=max(rtol, 1e-15))


def test_levenberg_marquardt_and_its_error_bars_equal_the_fit_in_memory():
    dataset = decay(5000)
    a, b = both(dataset, optimizer="lm", chunk_size=700)  # chunks in memory as on the row set: the same sums
    same(a, b)
    assert a.success and b.success
    assert b.uncertainty["stderr"] == a.uncertainty["stderr"]
    assert b.metrics["train"] == a.metrics["train"]
    assert b.diagnostics["lm"]["n_jacobian"] == a.diagnostics["lm"]["n_jacobian"]


def test_levenberg_marquardt_on_rows_of_one_chunk():
    # In memory, one chunk is factorised by QR; a row set's chunks are summed into JᵀJ: the same optimum.
    a, b = both(decay(5000), optimizer="lm")
    same(a, b, rtol=1e-10)
    np.testing.assert_allclose(b.uncertainty["stderr"], a.uncertainty["stderr"], rtol=1e-8)


def test_weighted_levenberg_marquardt_is_curve_fit_on_a_row_set():
    from scipy.optimize import curve_fit

    dataset = decay(3000, sigma=True)
    a, b = both(dataset, optimizer="lm", chunk_size=1000)
    same(a, b, rtol=1e-12)
    x, y = dataset.x[:, 0].numpy(), dataset.y.numpy()
    sigma = (1 / dataset.w.sqrt()).numpy()
    p, pcov = curve_fit(
        lambda x, a, b, c, d: a * np.exp(-b * x) + c + d * x, x, y, p0=list(START.values()), sigma=sigma
    )
    np.testing.assert_allclose(list(b.flat_params.values()), p, rtol=1e-6)
    np.testing.assert_allclose(b.uncertainty["stderr"], np.sqrt(np.diag(pcov)), rtol=1e-4)
    assert b.data["weights"] == a.data["weights"]


@pytest.mark.parametrize("model", [FORMULA, "poly2"])
def test_full_batch_gradient_descent_takes_the_same_steps(model):
    dataset = decay(4000)
    options = dict(optimizer="sgd", lr=0.01, steps=40, chunk_size=1500, dtype="float64")
    init = START if model == FORMULA else None
    a = gradfit.fit(model, dataset, y="y", init=init, row_pass="autograd", **options)
    b = gradfit.fit(model, HiddenRows(dataset), y="y", init=init, row_pass="autograd", **options)
    same(a, b, rtol=1e-12)
    np.testing.assert_allclose(b.history.columns["loss"], a.history.columns["loss"], rtol=1e-12)
    c = gradfit.fit(model, HiddenRows(dataset), y="y", init=init, **options)  # the fused pass where there is one
    same(a, c, rtol=1e-9)


def test_adam_with_its_learning_rate_from_the_curvature_equals_the_fit_in_memory():
    dataset = decay(2000)
    a, b = both(dataset, optimizer="adam", steps=30, dtype="float64")
    assert b.config["lr"] == a.config["lr"]
    same(a, b, rtol=1e-12)


@pytest.mark.parametrize(
    "options, named",
    [
        ({"val_split": 0.2}, "val_split"),
        ({"sigma": "s"}, "sigma"),
        ({"drop_nan": True}, "drop_nan"),
        ({"optimizer": "adam", "batch_size": 100}, "Mini-batches"),
    ],
)
def test_what_a_row_set_cannot_do_yet_is_refused_before_any_pass(options, named):
    rows = HiddenRows(decay(500))
    with pytest.raises(ConfigError, match=named):
        gradfit.fit(FORMULA, rows, y="y", init=START, **options)
    assert rows.passes == 0


def test_evenly_spaced_rows_are_those_the_probes_read():
    assert evenly_spaced(5, 10).tolist() == [0, 1, 2, 3, 4]
    picked = evenly_spaced(1_000_003, 10_000)
    assert picked[0] == 0 and picked[-1] == 1_000_002 and len(picked.unique()) == 10_000
    dataset = decay(50_000)
    sample = HiddenRows(dataset).sample(1000)
    assert torch.equal(sample.x, dataset.x[evenly_spaced(50_000, 1000)])


def test_rows_of_a_row_set_sums_as_the_tensors_do():
    dataset = decay(10_000, sigma=True)
    tensors = rows_of(dataset.x, dataset.y, dataset.w, 999)
    chunked = rows_of(HiddenRows(dataset), chunk_size=999)

    def part(x, y, w):
        return (w * (y - x[:, 0]) ** 2).sum(), x.sum(0)

    assert all(torch.equal(a, b) for a, b in zip(reduce(part, tensors), reduce(part, chunked)))
    with pytest.raises(TypeError, match="alone"):
        rows_of(HiddenRows(dataset), dataset.y)


def test_lbfgs_on_scaled_parameters_equals_the_fit_in_memory():
    dataset = decay(3000)
    a, b = both(dataset, optimizer="lbfgs", scale=True, dtype="float64", steps=20)
    assert b.diagnostics["scaling"]["kind"] == a.diagnostics["scaling"]["kind"]
    same(a, b, rtol=1e-10)


def test_a_model_linear_in_its_parameters_takes_its_statistics_from_one_pass_over_a_row_set():
    dataset = decay(6000)
    options = dict(optimizer="momentum", lr=0.01, momentum=0.9, steps=300, chunk_size=2000, dtype="float64")
    a = gradfit.fit("poly2", dataset, y="y", **options)
    rows = HiddenRows(dataset)
    b = gradfit.fit("poly2", rows, y="y", **options)
    assert a.diagnostics["row_pass"] == b.diagnostics["row_pass"] == ["sufficient_statistics"]
    same(a, b, rtol=1e-12)
    np.testing.assert_allclose(b.history.columns["loss"], a.history.columns["loss"], rtol=1e-12)


def test_a_process_torchrun_started_without_a_group_is_warned(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.warns(gradfit.GradfitWarning, match="init_from_env"):
        gradfit.fit(FORMULA, decay(300), y="y", init=START, optimizer="lm")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", gradfit.GradfitWarning)
        gradfit.fit(FORMULA, decay(300), y="y", init=START, optimizer="lm")


def test_a_fit_on_a_row_set_reads_its_rows_a_bounded_number_of_times(monkeypatch):
    # Every pass over a streamed file reads the file: the steps' passes, plus the sample, the metrics, the error bars
    # and the final loss. The verdict's hints (input scales, flatness) read the sample the fit holds, not the rows.
    passes = []
    chunks = HiddenRows.chunks
    monkeypatch.setattr(HiddenRows, "chunks", lambda self, *a, **k: passes.append(1) or chunks(self, *a, **k))
    r = gradfit.fit(FORMULA, HiddenRows(decay(5000)), y="y", init=START, optimizer="lm", chunk_size=700)
    assert len(passes) <= r.diagnostics["lm"]["n_jacobian"] + 4
    passes.clear()
    r = gradfit.fit(FORMULA, HiddenRows(decay(5000)), y="y", init=START, optimizer="sgd", lr=0.01, steps=10)
    assert len(passes) <= r.steps + 6

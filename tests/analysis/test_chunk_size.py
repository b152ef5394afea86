"""The analyses after a fit read the rows in the fit's chunks (``chunk_size``), and the answer does not depend on it.

Each analysis runs on 300 rows in the default chunk (one chunk) and in chunks of 7 rows, and must agree to
float64 summation-order rounding; a spy on :class:`gradfit.rowpass.MemoryRows` records the chunk lengths each
pass read, so a pass that ignored the chunk size (a chunk of 300 rows) fails the test.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import gradfit
from gradfit import rowpass
from gradfit.analysis.convergence import judge
from gradfit.analysis.fitted_data import chunk_size_of
from gradfit.analysis.flatness import _effects, flatness
from gradfit.analysis.landscape import compute_landscape
from gradfit.analysis.metrics import fit_metrics
from gradfit.analysis.optimum import least_squares_optimum
from gradfit.analysis.report import report_dict, statistics
from gradfit.analysis.stability import adam_lr, check_lr, stability_limit, stability_limit_of
from gradfit.analysis.uncertainty import compute_uncertainty, training_data, uncertainty_of
from gradfit.analysis.walkthrough import step_table
from gradfit.data.convert import as_dataset
from gradfit.errors import ConfigError
from gradfit.losses import get_loss
from gradfit.models.builder import build_model
from gradfit.train.result import FitResult

N = 300
SMALL = 7
RTOL = 1e-12
QUADRATIC = "a + b*x + c*x**2"


@pytest.fixture
def chunks(monkeypatch):
    """The lengths of the chunks every row pass reads, in order (cleared by the test where it starts looking)."""
    lengths: list[int] = []
    original = rowpass.MemoryRows.chunks

    def spy(self):
        for chunk in original(self):
            lengths.append(len(chunk[0]))
            yield chunk

    monkeypatch.setattr(rowpass.MemoryRows, "chunks", spy)
    return lengths


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(1)
    x = np.linspace(0.0, 3.0, N)
    return pd.DataFrame({"x": x, "y": 2 + 0.5 * x - 0.3 * x**2 + rng.normal(0, 0.1, N), "s": rng.uniform(0.05, 0.2, N)})


@pytest.fixture(scope="module")
def fitted(df):
    """A fit in the default chunk size, weighted by sigma, stopped short of the optimum (so its path moves)."""
    return gradfit.fit(QUADRATIC, df, y="y", sigma="s", optimizer="sgd", lr=1e-4, steps=20, dtype="float64")


def _in_chunks_of(result, size):
    """``result`` as a run fitted with ``chunk_size=size`` and loaded back from its result.json."""
    saved = dataclasses.replace(result, config={**result.config, "chunk_size": size})
    return FitResult.from_json(saved.to_json(), model=result.model, history=result.history)


def _looked(chunks, size=SMALL):
    assert chunks, "no row pass was seen"
    assert max(chunks) == size, f"a pass read chunks of {max(chunks)} rows, not {size}"
    assert len(chunks) >= N // size  # and it did read every row in them


# What each analysis of a result gives, as arrays to compare; each takes the result, the data and chunk_size=.
ANALYSES = {
    "uncertainty": lambda r, d, **k: uncertainty_of(r, d, **k).cov,
    "stability": lambda r, d, **k: stability_limit_of(r, d, tol=1e-13, iters=200, **k).lam_max,
    "optimum": lambda r, d, **k: list(least_squares_optimum(r, d, **k).values()),
    "landscape": lambda r, d, **k: compute_landscape(r, d, n=5, **k).loss,
    "steps": lambda r, d, **k: step_table(r, d, **k).to_numpy(dtype=np.float64),
    "statistics": lambda r, d, **k: [v for v in statistics(r, d, **k).values() if isinstance(v, float)],
    "report": lambda r, d, **k: report_dict(r, None, d, **k)["statistics"]["chisqr"],
}


@pytest.mark.parametrize("name", list(ANALYSES))
def test_each_analysis_of_a_result_gives_the_same_answer_in_chunks_of_7(name, fitted, df, chunks):
    analysis = ANALYSES[name]
    whole = analysis(fitted, df)  # the fit's own chunk size, the default: one chunk of 300 rows
    assert set(chunks) <= {N}  # (the step table's objective differentiates one chunk without the row pass)
    chunks.clear()
    small = analysis(fitted, df, chunk_size=SMALL)
    _looked(chunks)
    np.testing.assert_allclose(small, whole, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", list(ANALYSES))
def test_a_loaded_run_is_analysed_in_the_chunks_it_was_fitted_in(name, fitted, df, chunks):
    analysis = ANALYSES[name]
    loaded = _in_chunks_of(fitted, SMALL)
    chunks.clear()
    mine = analysis(loaded, df)
    _looked(chunks)
    np.testing.assert_allclose(mine, analysis(fitted, df), rtol=RTOL, atol=0)
    chunks.clear()
    analysis(loaded, df, chunk_size=N)  # an explicit chunk size wins over the run's
    assert set(chunks) <= {N}


def test_a_run_saved_without_a_chunk_size_reads_the_default(fitted, df, chunks):
    old = FitResult.from_json(
        dataclasses.replace(fitted, config={k: v for k, v in fitted.config.items() if k != "chunk_size"}).to_json(),
        model=fitted.model,
        history=fitted.history,
    )
    assert "chunk_size" not in old.config and chunk_size_of(old) is None
    uncertainty_of(old, df)
    assert max(chunks) == N


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "7"])
def test_a_chunk_size_that_is_not_a_whole_number_is_refused(fitted, df, bad):
    with pytest.raises(ConfigError, match="'chunk_size' parameter must be a whole number >= 1"):
        uncertainty_of(fitted, df, chunk_size=bad)
    with pytest.raises(ConfigError, match="'chunk_size' parameter must be a whole number >= 1"):
        compute_landscape(fitted, df, n=3, chunk_size=bad)


def test_landscape_keeps_chunk_rows_as_the_former_name(fitted, df, chunks):
    old = compute_landscape(fitted, df, n=5, chunk_rows=SMALL)
    _looked(chunks)
    np.testing.assert_allclose(old.loss, compute_landscape(fitted, df, n=5, chunk_size=SMALL).loss, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="former name of 'chunk_size'"):
        compute_landscape(fitted, df, n=5, chunk_rows=5, chunk_size=SMALL)


@pytest.mark.parametrize("loss", ["mse", "huber", "mae"])
def test_uncertainty_of_every_method_in_chunks_of_7(loss, df, chunks):
    """The Jacobian's QR fold (mse, mae) and the Hessian's sums (huber) agree across chunk sizes."""
    model = build_model(QUADRATIC, ("x",))
    ds = as_dataset(df, x=["x"], y="y", dtype=torch.float64)
    params = {
        "a": torch.tensor(2.0, dtype=torch.float64),
        "b": torch.tensor(0.5, dtype=torch.float64),
        "c": torch.tensor(-0.3, dtype=torch.float64),
    }
    whole = compute_uncertainty(model, get_loss(loss), ds, params)
    chunks.clear()
    small = compute_uncertainty(model, get_loss(loss), ds, params, chunk_size=SMALL)
    _looked(chunks)
    assert whole.ok and small.ok and small.method == whole.method
    np.testing.assert_allclose(small.cov, whole.cov, rtol=RTOL, atol=0)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_unweighted_and_likelihood_statistics_in_chunks_of_7(loss, df, chunks):
    data = df.assign(c=(df["y"] > df["y"].median()).astype(float))
    r = gradfit.fit("a + b*x", data, y="y" if loss == "mse" else "c", loss=loss, optimizer="sgd", lr=0.01, steps=5)
    whole = statistics(r, data)
    chunks.clear()
    small = statistics(r, data, chunk_size=SMALL)
    _looked(chunks)
    keys = ("rss", "tss", "r2", "aic") if loss == "mse" else ("nll", "aic", "bic")
    for key in keys:
        assert small[key] == pytest.approx(whole[key], rel=RTOL)
    y = training_data(r, data).y.double().numpy()  # the targets in the fit's dtype (float32)
    if loss == "mse":  # the oracle: numpy on the model's predictions
        pred = np.asarray(r.predict(data), dtype=np.float64).reshape(-1)
        assert small["rss"] == pytest.approx(float(((y - pred) ** 2).sum()), rel=1e-6)
        assert small["tss"] == pytest.approx(float(((y - y.mean()) ** 2).sum()), rel=RTOL)


def test_metrics_in_chunks_of_7(fitted, df, chunks):
    loss, train = get_loss("mse"), training_data(fitted, df)
    whole = fit_metrics(fitted.model, fitted.params, loss, train)
    chunks.clear()
    small = fit_metrics(fitted.model, fitted.params, loss, train, chunk_size=SMALL)
    _looked(chunks)
    for key in ("r2", "rmse", "mae", "rss", "tss"):
        assert small["train"][key] == pytest.approx(whole["train"][key], rel=RTOL)


def test_stability_check_in_chunks_of_7(fitted, df, chunks):
    ds = training_data(fitted, df)
    params = {k: v.double() for k, v in fitted.params.items()}
    whole = stability_limit(fitted.model, "mse", ds.x, ds.y, params, tol=1e-13, iters=200, w=ds.w)
    chunks.clear()
    small = stability_limit(fitted.model, "mse", ds.x, ds.y, params, tol=1e-13, iters=200, w=ds.w, chunk_size=SMALL)
    _looked(chunks)
    assert small.lam_max == pytest.approx(whole.lam_max, rel=RTOL)
    chunks.clear()
    limit, _ = check_lr(fitted.model, "mse", ds.x, ds.y, params, (), 1.0, "sgd", w=ds.w, chunk_size=SMALL)
    _looked(chunks)
    assert limit is not None


@pytest.mark.parametrize("weighted", [False, True])
def test_adams_learning_rate_in_chunks_of_7(weighted, fitted, df, chunks):
    """The curvature along the gradient's signs, summed over chunks: the single pass's answer to rounding."""
    ds = training_data(fitted, df)
    w = ds.w if weighted else None
    params = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in fitted.params.items()}
    whole = adam_lr(fitted.model, "mse", ds.x, ds.y, params, w=w)
    assert chunks == []  # one chunk: the single autograd pass, as before chunks were taken
    small = adam_lr(fitted.model, "mse", ds.x, ds.y, params, w=w, chunk_size=SMALL)
    _looked(chunks)
    assert whole is not None and small == pytest.approx(whole, rel=RTOL)
    chunks.clear()
    flat = build_model("a + 0*x", ("x",)), "mae", ds.x, ds.y, {"a": torch.tensor(1.0, dtype=torch.float64)}
    assert adam_lr(*flat) is None and adam_lr(*flat, chunk_size=SMALL) is None  # |y - a| has no curvature in a
    _looked(chunks)


def test_a_fit_with_adam_in_chunks_of_7_chooses_its_lr_in_them(df, chunks, monkeypatch):
    from gradfit.analysis import stability

    sizes, original = [], stability._adam_lr_in_chunks
    monkeypatch.setattr(
        stability, "_adam_lr_in_chunks", lambda problem, *a: sizes.append(problem.chunk_size) or original(problem, *a)
    )
    r = gradfit.fit(QUADRATIC, df, y="y", batch_size=50, steps=5, chunk_size=SMALL, dtype="float64")
    _looked(chunks)
    assert r.config["optimizer"] == "adam"  # mini-batches: the automatic choice, its lr from the curvature
    assert sizes == [SMALL]
    train = training_data(r, df)
    params = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.init_params.items()}
    assert r.config["lr"] == pytest.approx(adam_lr(r.model, "mse", train.x, train.y, params), rel=RTOL)


def test_flatness_in_chunks_of_7(chunks):
    """The docstring's plateau (exp(-b*hp) underflows at b = 1): the same diagnosis and effects in any chunks."""
    model = build_model("a*exp(-b*hp) + c", ("hp",))
    hp = torch.linspace(50, 335, N, dtype=torch.float64)[:, None]
    y = 30 * torch.exp(-0.01 * hp[:, 0]) + 10
    values = {"a": 1.0, "b": 0.01, "c": 1.0}
    base = np.array([values[n] for n in model.flat_names()])
    whole = _effects(model, hp, base, [0, 1, 2], 1.0)
    chunks.clear()
    small = _effects(model, hp, base, [0, 1, 2], 1.0, chunk_size=SMALL)
    _looked(chunks)
    np.testing.assert_allclose(small, whole, rtol=RTOL, atol=0)
    plateau = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert flatness(model, hp, y, plateau, ["a", "b", "c"], chunk_size=SMALL) == flatness(
        model, hp, y, plateau, ["a", "b", "c"]
    )
    assert flatness(model, hp, y, plateau, ["a", "b", "c"], chunk_size=SMALL).remedy == {"b": 0.01}


def test_the_verdict_in_chunks_of_7(df, chunks):
    r = gradfit.fit(QUADRATIC, df, y="y", optimizer="sgd", lr=0.05, steps=50, dtype="float64")
    loss, train = get_loss("mse"), training_data(r, df)
    unc = uncertainty_of(r, df)
    whole = judge(r, unc, r.model, loss, train)
    chunks.clear()
    small = judge(r, unc, r.model, loss, train, chunk_size=SMALL)
    _looked(chunks)  # the flatness probe's Jacobians
    assert small == whole


def test_the_verdicts_column_scales_and_baseline_in_chunks_of_7(df, chunks):
    """What the verdict measures of the rows (the inputs' scale, the targets' variance) against numpy, in any chunks."""
    from gradfit.analysis.convergence import _badly_scaled, _baseline

    far = pd.DataFrame({"x": df["x"] * 1e3 + 5e5, "z": df["x"] * 1e-3, "y": df["y"]})  # an offset, a tiny scale
    ds = as_dataset(far, x=["x", "z"], y="y", dtype=torch.float32)
    mse = get_loss("mse")
    whole, base = _badly_scaled(ds), _baseline(mse, ds)
    chunks.clear()
    rms = np.sqrt((ds.x.double().numpy() ** 2).mean(axis=0))
    assert _badly_scaled(ds, SMALL) == whole == f"x: rms {rms[0]:.3g}, z: rms {rms[1]:.3g}"
    _looked(chunks)
    chunks.clear()
    assert _baseline(mse, ds, SMALL) == pytest.approx(base, rel=RTOL)
    _looked(chunks)
    assert base == pytest.approx(np.var(ds.y.double().numpy()), rel=RTOL)


@pytest.mark.parametrize("optimizer", ["sgd", "lm"])
def test_a_fit_in_chunks_of_7_reads_every_row_pass_in_them(optimizer, df, chunks):
    """Before the loop (the stability check), the loop, and every analysis after it: no chunk above 7 rows; and
    what the analyses stored is what they give in one chunk."""
    options = {"lr": 0.05, "steps": 50} if optimizer == "sgd" else {}
    r = gradfit.fit(QUADRATIC, df, y="y", optimizer=optimizer, chunk_size=SMALL, dtype="float64", **options)
    _looked(chunks)
    assert r.config["chunk_size"] == SMALL and r.uncertainty["ok"] and r.diagnostics["verdict"] is not None
    loss, train = get_loss("mse"), training_data(r, df)
    whole = uncertainty_of(r, df, chunk_size=rowpass.CHUNK_ROWS)
    np.testing.assert_allclose(np.array(r.uncertainty["cov"], dtype=np.float64), whole.cov, rtol=RTOL, atol=0)
    metrics = fit_metrics(r.model, r.params, loss, train)["train"]
    for key in ("r2", "rmse", "mae"):
        assert r.metrics["train"][key] == pytest.approx(metrics[key], rel=RTOL)
    stats = statistics(r, df, chunk_size=rowpass.CHUNK_ROWS)
    assert r.report["statistics"]["r2"] == pytest.approx(stats["r2"], rel=RTOL)
    if optimizer == "sgd":  # the stability limit at the start, measured as check_lr does
        params = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.init_params.items()}
        limit, _ = check_lr(r.model, loss, train.x, train.y, params, (), 0.05, "sgd")
        assert r.diagnostics["stability_limit"]["lam_max"] == pytest.approx(limit.lam_max, rel=RTOL)

"""The fit report: statistics against numpy by hand, flagged correlations, each warning, text and dict agree."""

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gradfit
from gradfit.analysis.report import fit_report, report_dict, statistics
from gradfit.analysis.uncertainty import uncertainty_of

sys.path.insert(0, str(Path(__file__).parents[1] / "optim"))
from problems import by_name  # noqa: E402


def _decay(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 4, n)
    return {"x": x, "y": 2 * np.exp(-1.3 * x) + 0.5 + 0.02 * rng.normal(size=n)}


@pytest.fixture(scope="module")
def decay():
    d = _decay()
    r = gradfit.fit(
        "a*exp(-b*x) + c", d, y="y", init={"a": 1, "b": 1, "c": 0}, optimizer="lbfgs", steps=60, dtype="float64"
    )
    return r, d


def test_statistics_match_numpy(decay):
    r, d = decay
    p = r.flat_params
    resid = d["y"] - (p["a"] * np.exp(-p["b"] * d["x"]) + p["c"])
    n, k = len(d["x"]), 3
    rss, tss = resid @ resid, ((d["y"] - d["y"].mean()) ** 2).sum()
    st = statistics(r, d)
    assert st["n"] == n and st["p"] == k
    assert st["rss"] == pytest.approx(rss, rel=1e-10)
    assert st["r2"] == pytest.approx(1 - rss / tss, rel=1e-10)
    assert st["redchi"] == pytest.approx(rss / (n - k), rel=1e-10)
    assert st["aic"] == pytest.approx(n * math.log(rss / n) + 2 * k, rel=1e-10)
    assert st["bic"] == pytest.approx(n * math.log(rss / n) + k * math.log(n), rel=1e-10)


def test_text_shows_names_values_and_the_uncertainty_stderr(decay):
    r, d = decay
    u = uncertainty_of(r, d)
    text = fit_report(r, u, d)
    for name, value in r.flat_params.items():
        line = next(l for l in text.splitlines() if l.strip().startswith(name + " "))
        assert f"{value:.6g}" in line and f"+/- {u[name]:.4g}" in line
    assert "[[Statistics]]" in text and "R-squared" in text and "a*exp(-b*x) + c" in text
    assert "[[Warnings]]" not in text  # a converged fit, no caveats


def test_report_dict_is_json_and_matches_the_uncertainty(decay):
    r, d = decay
    u = uncertainty_of(r, d)
    rep = report_dict(r, u, d)
    json.dumps(rep, allow_nan=False)
    row = {p["name"]: p for p in rep["parameters"]}
    assert row["b"]["stderr"] == pytest.approx(u["b"])
    assert row["b"]["rel_err"] == pytest.approx(100 * u["b"] / r.flat_params["b"])
    assert row["b"]["ci_low"] == pytest.approx(u.ci_low[u.names.index("b")])


def test_strong_correlation_is_flagged():
    pr = by_name("misra1a")
    r = gradfit.fit(pr.formula, pr.data, y="y", init=dict(zip(pr.params, pr.certified)), steps=0, dtype="float64")
    u = uncertainty_of(r, pr.data)
    r12 = u.corr[0, 1]
    assert abs(r12) > 0.9
    text = fit_report(r, u, pr.data)
    assert f"b1 and b2 are correlated (r = {r12:.3f})" in text
    assert report_dict(r, u, pr.data)["correlations"] == [{"a": "b1", "b": "b2", "r": pytest.approx(r12)}]


def _line(n=20):
    x = np.linspace(0, 1, n)
    return {"x": x, "y": -2 * x + 1 + 0.1 * np.sin(17 * x)}


def test_not_converged_warning_measures_the_tail():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", lr=0.01, steps=50)
    loss = r.history["loss"]
    drop = (loss[-6] - loss[-1]) / loss[-1]  # the last 10% of 51 recorded rows
    text = fit_report(r, data=d)
    assert f"Not converged: the loss was still falling when the fit stopped (max_steps), down {100 * drop:.3g}%" in text


def test_diverged_warning():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", lr=50, steps=100)
    rep = report_dict(r, data=d)
    assert rep["warnings"][0].startswith("The fit diverged:")
    assert any("Uncertainties are unavailable: The fit diverged" in w for w in rep["warnings"])


def test_at_bound_and_fixed_markers():
    d = _line()
    r = gradfit.fit(
        "a*x + c + e0",
        d,
        y="y",
        bounds={"c": (1.5, None)},
        init={"c": 2.0, "e0": 0.0},
        fix="e0",
        optimizer="lbfgs",
        steps=50,
        dtype="float64",
    )
    text = fit_report(r, data=d)
    assert "c ended on its bound [1.5, inf]" in text
    assert next(l for l in text.splitlines() if l.strip().startswith("c ")).endswith("(at bound)")
    assert next(l for l in text.splitlines() if l.strip().startswith("e0 ")).endswith("(fixed)")
    assert "unavailable" not in text  # the bound is the only problem and has its own warning


def test_parameter_without_effect_and_unidentifiable_pair_are_warned():
    d = _line()
    r = gradfit.fit(
        "a*b*x + c + 0*k", d, y="y", init={"a": 1.0, "b": -2.0}, optimizer="lbfgs", steps=50, dtype="float64"
    )
    rep = report_dict(r, data=d)
    assert (
        "k has no effect on the predictions: the data say nothing about it; fix it or remove it from the model."
        in rep["warnings"]
    )
    assert any(
        w.startswith("Some uncertainties are unavailable:") and "a and b are not separately identifiable" in w
        for w in rep["warnings"]
    )


def test_stability_limit_warning_from_diagnostics():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", lr=1e-5, steps=50)
    r = dataclasses.replace(r, diagnostics={**r.diagnostics, "stability_limit": 3.5e-5})
    text = fit_report(r, data=d)
    assert (
        "lr 1e-05 is 3.5x below the stability limit 3.5e-05: a larger lr, up to the limit, would converge faster."
        in text
    )
    r = dataclasses.replace(r, diagnostics={"stability_limit": {"limit": 3.5e-5, "lam_max": 2 / 3.5e-5}})
    assert "3.5x below the stability limit" in fit_report(r, data=d)


def test_no_stability_warning_when_converged():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", optimizer="lbfgs", steps=50, dtype="float64")
    r = dataclasses.replace(
        r, config={**r.config, "optimizer": "sgd", "lr": 1e-5}, diagnostics={"stability_limit": 1.0}
    )
    assert "stability limit" not in fit_report(r, data=d)


def test_likelihood_statistics_use_twice_the_nll():
    rng = np.random.default_rng(0)
    u = rng.normal(size=300)
    d = {"u": u, "y": (rng.random(300) < 1 / (1 + np.exp(-2 * u))).astype(float)}
    r = gradfit.fit("a*u + c", d, y="y", loss="bce", optimizer="lbfgs", steps=30, dtype="float64")
    p = 1 / (1 + np.exp(-(r.flat_params["a"] * u + r.flat_params["c"])))
    nll = -(d["y"] * np.log(p) + (1 - d["y"]) * np.log(1 - p)).sum()
    st = statistics(r, d)
    assert st["nll"] == pytest.approx(nll, rel=1e-9) and st["rss"] is None and st["r2"] is None
    assert st["aic"] == pytest.approx(2 * nll + 4, rel=1e-9) and st["bic"] == pytest.approx(2 * nll + 2 * math.log(300))
    assert "AIC and BIC from 2 x NLL" in fit_report(r, data=d)


def test_saved_result_without_data_reports_what_it_can(tmp_path):
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", optimizer="lbfgs", steps=50, dtype="float64", uncertainty=False)
    loaded = gradfit.FitResult.from_json(r.to_json())
    st = statistics(loaded)
    assert st["rss"] == pytest.approx(r.loss * 20)
    assert st["r2"] == pytest.approx(statistics(r, d)["r2"], rel=1e-12)  # stored at fit time, not lost
    old = gradfit.FitResult.from_json(dataclasses.replace(r, metrics=None).to_json())  # saved by an older gradfit
    assert statistics(old)["r2"] is None and statistics(old)["rss"] == pytest.approx(r.loss * 20)
    assert "Uncertainties were not computed" in fit_report(dataclasses.replace(loaded, uncertainty=None))
    # With the uncertainty stored in the result (as gradfit.fit does by default), the errors come back without data.
    stored = gradfit.FitResult.from_json(dataclasses.replace(r, uncertainty=uncertainty_of(r, d).to_dict()).to_json())
    assert "+/-" in fit_report(stored)
    by_default = gradfit.fit("a*x + c", d, y="y", optimizer="lbfgs", steps=50, dtype="float64")
    assert by_default.uncertainty["stderr"] == stored.uncertainty["stderr"]


def test_no_nag_when_the_lr_is_close_to_the_stability_limit():
    d = _line()
    r = gradfit.fit("a*x + c", d, y="y", lr=1e-5, steps=50)
    near = dataclasses.replace(r, diagnostics={**r.diagnostics, "stability_limit": 1e-5 / 0.9})
    assert "below the stability limit" not in fit_report(near, data=d)
    far = dataclasses.replace(r, diagnostics={**r.diagnostics, "stability_limit": 1e-5 / 0.3})
    assert "below the stability limit" in fit_report(far, data=d)


def test_in_memory_fit_keeps_its_statistics_after_json_and_load_run(tmp_path):
    """Issue 8, item 10: R², RSS, AIC of a fit on in-memory data survive from_json and load_run."""
    from gradfit.outputs import load_run, save_run

    d = _decay()
    r = gradfit.fit(
        "a*exp(-b*x) + c", d, y="y", init={"a": 1, "b": 1, "c": 0}, optimizer="lbfgs", steps=60, dtype="float64"
    )
    p = r.flat_params
    resid = d["y"] - (p["a"] * np.exp(-p["b"] * d["x"]) + p["c"])
    r2 = 1 - resid @ resid / ((d["y"] - d["y"].mean()) ** 2).sum()
    save_run(r, tmp_path)
    for again in (gradfit.FitResult.from_json(r.to_json()), load_run(tmp_path)):
        st = statistics(again)
        assert st["r2"] == pytest.approx(r2, rel=1e-10) and st["aic"] == pytest.approx(statistics(r, d)["aic"])
        text = fit_report(again)
        assert f"R-squared          {r2:.6g}" in text and "[[Metrics]]" in text


def test_likelihood_statistics_survive_json():
    rng = np.random.default_rng(1)
    u = rng.normal(size=200)
    d = {"u": u, "y": (rng.random(200) < 1 / (1 + np.exp(-u))).astype(float)}
    r = gradfit.fit("a*u + c", d, y="y", loss="bce", optimizer="lbfgs", steps=30, dtype="float64")
    st = statistics(gradfit.FitResult.from_json(r.to_json()))
    assert st["nll"] == pytest.approx(statistics(r, d)["nll"], rel=1e-12) and st["rss"] is None
    assert st["bic"] == pytest.approx(statistics(r, d)["bic"], rel=1e-12)


def test_metrics_section_shows_train_and_validation():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, 120)
    d = {"x": x, "y": 2 * x + rng.normal(scale=0.1, size=120)}
    r = gradfit.fit("a*x + c", d, y="y", optimizer="lbfgs", steps=30, dtype="float64", val_split=0.25)
    text = fit_report(r)
    lines = text.splitlines()
    i = lines.index("[[Metrics]]")
    assert lines[i + 1].split() == ["train", "validation"]
    for row, key in zip(lines[i + 2 : i + 5], ("r2", "rmse", "mae")):
        assert row.split()[-2:] == [f"{r.metrics['train'][key]:.6g}", f"{r.metrics['validation'][key]:.6g}"]
    assert report_dict(r)["metrics"] == r.metrics


def test_classifier_report_shows_accuracy_and_the_confusion_matrix():
    from gradfit.data.io import read_table

    frame = read_table("builtin:blobs")
    r = gradfit.fit("logistic", frame, y="label", loss="cross_entropy", optimizer="adam", lr=0.05, steps=20)
    m = r.metrics["train"]
    text = fit_report(r)
    assert f"accuracy {m['accuracy']:.6g}" in " ".join(text.split())
    assert f"log-loss {m['log_loss']:.6g}" in " ".join(text.split())
    block = text.split("[[Confusion matrix]]  (train: rows true class, columns predicted)\n")[1].splitlines()
    assert block[0].split() == ["true", "0", "1"]
    assert [list(map(int, row.split()[1:])) for row in block[1:3]] == m["confusion_matrix"]
    assert sum(map(sum, m["confusion_matrix"])) == len(frame)


@pytest.mark.parametrize("loss, lm", [("mse", True), ("cross_entropy", False), ("bce", False), ("mae", False)])
def test_not_converged_advice_proposes_lm_only_for_least_squares(loss, lm):
    rng = np.random.default_rng(5)
    u = rng.normal(size=200)
    label = (u + 0.5 * rng.normal(size=200) > 0).astype(float)
    if loss == "cross_entropy":
        r = gradfit.fit("logistic", {"u": u, "y": label}, y="y", loss=loss, optimizer="sgd", lr=0.01, steps=30)
    else:
        r = gradfit.fit(
            "a*u + c",
            {"u": u, "y": label if loss == "bce" else 3 * u + 1},
            y="y",
            loss=loss,
            optimizer="sgd",
            lr=0.001,
            steps=30,
        )
    text = fit_report(r)
    assert "Not converged" in text
    assert ("--optimizer lm" in text) is lm and ("--optimizer lbfgs" in text) is (not lm)


def test_uncertainty_advice_for_a_likelihood_never_proposes_lm():
    rng = np.random.default_rng(6)
    u = rng.normal(size=300)
    d = {"u": u, "y": (rng.random(300) < 1 / (1 + np.exp(-2 * u))).astype(float)}
    r = gradfit.fit("a*u + c", d, y="y", loss="bce", optimizer="sgd", lr=0.05, steps=3, dtype="float64")
    u_ = uncertainty_of(r, d)
    assert any("not at a minimum" in w for w in u_.warnings)
    assert not any("'lm'" in w for w in u_.warnings) and any("'lbfgs'" in w for w in u_.warnings)


def test_large_model_report_summarises_each_tensor():
    x = np.linspace(-1, 1, 64)
    d = {"x": x, "y": np.sin(3 * x)}
    r = gradfit.fit("mlp", d, y="y", model_options={"hidden": (16, 8)}, optimizer="adam", lr=0.01, steps=20)
    rep = report_dict(r)
    assert rep["parameters"] == [] and rep["n_params"] == len(r.flat_params) == 16 + 16 + 128 + 8 + 8 + 1
    by_name = {t["name"]: t for t in rep["tensors"]}
    assert list(by_name) == ["W0", "b0", "W1", "b1", "W2", "b2"]
    for name, t in by_name.items():
        v = r.params[name].double()
        assert t["shape"] == list(v.shape) and t["size"] == v.numel()
        assert t["norm"] == pytest.approx(float(torch.linalg.vector_norm(v)), rel=1e-12)
        assert t["mean"] == pytest.approx(float(v.mean()), rel=1e-9, abs=1e-15)
        assert (t["min"], t["max"]) == (pytest.approx(float(v.min())), pytest.approx(float(v.max())))
        assert (t["values"] is None) is (v.numel() > 8)
    text = fit_report(r)
    assert "W1[0,0]" not in text and "177 values in 6 tensors" in text
    assert any(l.split()[:2] == ["W1", "16x8"] for l in text.splitlines())
    assert f"[{by_name['b2']['values'][0]:.5g}]" in text
    small = report_dict(gradfit.fit("a*x + c", d, y="y", optimizer="lbfgs", steps=5))
    assert small["tensors"] is None and [p["name"] for p in small["parameters"]] == ["a", "c"]

"""The flatness probe at a Levenberg-Marquardt fit's final point reads the solver's kept ``[J | r]`` block
(:func:`gradfit.analysis.flatness._kept_jacobian`) instead of taking the Jacobian again: the effects must be the
probe's own to the bit, match autograd's column norms, and the block must be left unused wherever it is not the
very Jacobian the probe would take."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import gradfit
from gradfit.analysis import flatness as fl
from gradfit.optim.lm import PointSums

FORMULA = "a*exp(-b*x) + c + d*x"
START = {"a": 2.0, "b": 1.0, "c": 0.0, "d": 0.0}


def data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    x = np.linspace(0.0, 4.0, n)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(n)
    return {"x": x, "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + noise}


@pytest.fixture
def spy(monkeypatch):
    """Every call of _effects: (its arguments, what it returned)."""
    calls: list = []
    original = fl._effects

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setattr(fl, "_effects", recording)
    return calls


def fit(d, formula=FORMULA, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options.setdefault("init", START)
        return gradfit.fit(formula, d, y="y", optimizer="lm", uncertainty=True, **options)


def kept_of(call):
    args, kwargs, _ = call
    return kwargs.get("kept", args[6] if len(args) > 6 else None)


def autograd_effects(result, d) -> np.ndarray:
    """The oracle: autograd's Jacobian column norms, ``|J_j| max(|theta_j|, 1) / sqrt(m) / std(y)``."""
    x = torch.tensor(d["x"], dtype=torch.float64)
    names = list(result.flat_params)
    theta = torch.tensor([result.flat_params[n] for n in names], dtype=torch.float64)

    def predict(t):
        return result.model(dict(zip(names, t.unbind())), x[:, None]).reshape(-1)

    J = torch.autograd.functional.jacobian(predict, theta)
    y = torch.tensor(d["y"], dtype=torch.float64)
    scale = np.maximum(np.abs(theta.numpy()), 1.0)
    return J.norm(dim=0).numpy() * scale / math.sqrt(len(x)) / float(y.std())


@pytest.mark.parametrize("n", [20, 2000])
def test_the_kept_block_gives_the_probes_own_effects_to_the_bit(spy, n):
    d = data(n)
    r = fit(d)
    kept = [c for c in spy if kept_of(c) is not None]
    assert len(kept) == 1  # the probe at the final point read the block
    args, _, out = kept[0]
    again = fl._effects(*args[:6])  # the same probe, its Jacobian taken again
    assert out.tobytes() == again.tobytes()
    np.testing.assert_allclose(out, autograd_effects(r, d), rtol=1e-12)


def test_the_verdict_and_report_are_those_of_the_probe_without_the_block(monkeypatch):
    d = data(20)
    with_block = fit(d)
    monkeypatch.setattr(fl, "_kept_jacobian", lambda *a, **k: None)
    without = fit(d)
    assert with_block.diagnostics["verdict"] == without.diagnostics["verdict"]
    assert with_block.message == without.message
    assert with_block.report["parameters"] == without.report["parameters"]


def test_a_vanishing_parameter_is_found_and_remedied_as_before(monkeypatch):
    """exp(-b*hp) underflows at b = 1 on horsepowers: the probe names a and b, and its remedy, with the block read
    or not."""
    hp = np.linspace(50, 335, 32)
    d = {"x": hp, "y": 30 * np.exp(-0.01 * hp) + 10}
    start = {"a": 1.0, "b": 1.0, "c": 1.0}
    with_block = fit(d, "a*exp(-b*x) + c", init=start)
    monkeypatch.setattr(fl, "_kept_jacobian", lambda *a, **k: None)
    without = fit(d, "a*exp(-b*x) + c", init=start)
    assert with_block.diagnostics["verdict"] == without.diagnostics["verdict"]
    assert with_block.message == without.message
    assert "b=0.01" in with_block.message


@pytest.mark.parametrize(
    ("n", "options"),
    [
        (20, {"row_pass": "autograd"}),  # autograd's columns: the probe would take the formula's
        (20, {"dtype": "float32"}),  # float32 columns cast up: not the probe's float64 pass
        (20, {"weights": "w"}),  # sqrt(w) J: the probe's J is unweighted
        (20, {"bounds": {"b": (0.0, 1.0)}}),  # b ends on its bound: if read, the probe's own columns
        (20, {"fix": ["d"]}),  # fewer columns, still the probe's: used (checked below)
        (3000, {}),  # more rows than the probe reads
        (200, {"chunk_size": 64}),  # several chunks: no block kept
    ],
)
def test_the_block_is_left_unused_where_it_is_not_the_probes_jacobian(spy, n, options):
    d = data(n)
    if "weights" in options:
        d["w"] = np.linspace(0.5, 2.0, n)
    r = fit(d, **options)
    used = [kept_of(c) is not None for c in spy]
    if "fix" in options or "bounds" in options:
        assert used == [True] if "fix" in options else len(used) >= 1
        for args, kwargs, out in spy:
            if kept_of((args, kwargs, out)) is not None:
                assert out.tobytes() == fl._effects(*args[:6]).tobytes()
    else:
        assert not any(used)
    assert r.diagnostics["verdict"] is not None


def test_a_block_that_is_not_finite_is_not_read():
    d = data(20)
    r = fit(d)

    x = torch.tensor(d["x"], dtype=torch.float64)[:, None]
    y = torch.tensor(d["y"], dtype=torch.float64)
    block = torch.ones(20, 5, dtype=torch.float64)
    block[3, 1] = math.inf
    values = np.array(list(r.flat_params.values()))
    good = PointSums(
        ("a", "b", "c", "d"), values, block.clone().fill_(1.0), None, 1.0, (r.model, x, y, None), "formula derivative"
    )
    bad = PointSums(("a", "b", "c", "d"), values, block, None, 1.0, (r.model, x, y, None), "formula derivative")
    names = list(r.flat_params)
    assert fl._kept_jacobian(good, r.model, x, y, names, values, None) is not None
    assert fl._kept_jacobian(bad, r.model, x, y, names, values, None) is None
    # another model, other rows, other values, autograd's columns: not read
    assert fl._kept_jacobian(good, r.model, x.clone(), y, names, values, None) is None
    assert fl._kept_jacobian(good, r.model, x, y, names, values + 1e-12, None) is None
    autograd = PointSums(("a", "b", "c", "d"), values, block.clone().fill_(1.0), None, 1.0, (r.model, x, y, None))
    assert fl._kept_jacobian(autograd, r.model, x, y, names, values, None) is None

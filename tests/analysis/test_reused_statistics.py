"""The verdict's baseline (the targets' variance) is read from the training metrics' ``tss`` when they cover the
training rows, instead of two more passes over them: it must equal the two-pass value, and be computed afresh when
the metrics are of other rows or missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradfit.analysis.convergence import _baseline
from gradfit.analysis.metrics import fit_metrics
from gradfit.data.convert import as_dataset
from gradfit.losses import get_loss
from gradfit.models.formula_model import FormulaModel


@pytest.mark.parametrize("offset", [0.0, 1e6])
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_the_baseline_from_the_metrics_is_the_two_pass_variance(offset, chunk_size):
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 500)
    y = offset + 2 * x + rng.standard_normal(500)
    ds = as_dataset({"x": x, "y": y}, y="y", dtype=torch.float64)
    model = FormulaModel("a*x + b", inputs=["x"])
    params = {"a": torch.tensor(2.0, dtype=torch.float64), "b": torch.tensor(offset, dtype=torch.float64)}
    mse = get_loss("mse")
    metrics = fit_metrics(model, params, mse, ds, chunk_size=chunk_size)
    fresh = _baseline(mse, ds, chunk_size)
    assert fresh == pytest.approx(np.var(y), rel=1e-12)
    # The metrics combine the chunks' sums by Chan's update: 1e-10 relative on a 1e6 offset in 7-row chunks, where
    # the verdict uses the baseline only as the scale of its "fits exactly" threshold (1e-9 of it at the least).
    assert _baseline(mse, ds, chunk_size, metrics) == pytest.approx(fresh, rel=1e-12 if offset == 0 else 1e-9)
    other = {"train": {**metrics["train"], "n": 499, "tss": 1.0}}  # metrics of other rows: not used
    assert _baseline(mse, ds, chunk_size, other) == fresh
    assert _baseline(mse, ds, chunk_size, {"train": None}) == fresh

"""The small-vector shortcuts inside Levenberg-Marquardt's iteration give numpy's numbers to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from gradfit.optim.lm import _norm


@pytest.mark.parametrize("size", [0, 1, 4, 37])
@pytest.mark.parametrize("scale", [1e-200, 1.0, 1e150, 1e200])
def test_norm_is_numpys(size, scale):
    v = np.random.default_rng(size).standard_normal(size) * scale
    with np.errstate(over="ignore", under="ignore"):
        want = float(np.linalg.norm(v))
        got = _norm(v)
    assert got == want or (np.isnan(got) and np.isnan(want))
    if size and scale == 1e200:
        assert got == np.inf  # overflows as numpy's does: no rescaling either way

"""The Levenberg-Marquardt solver's own state (``state_dict`` / ``load_state_dict``, torch.optim's convention).

The oracle is the solver itself: one loaded from another's state must make the very iterations the original
goes on to make, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradfit.optim.lm import STATE_KEYS, ChunkedResiduals, LevenbergMarquardt

X = torch.linspace(0, 4, 40, dtype=torch.float64)
Y = 3 * torch.exp(-1.3 * X) + 0.5 + 0.01 * torch.sin(7 * X)
START = torch.tensor([1.0, 0.1, 0.0], dtype=torch.float64)
BOXES = {
    "no bounds": (None, None),
    "bounds": (torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), torch.tensor([10.0, 1.0, 0.45])),
}


def _solver(lower=None, upper=None, start=START) -> LevenbergMarquardt:
    res = ChunkedResiduals(lambda p, x, y: p[0] * torch.exp(-p[1] * x) + p[2] - y, X, Y, chunk_size=16)
    return LevenbergMarquardt(res, start, lower=lower, upper=upper)


def _run(lm: LevenbergMarquardt, n: int) -> list:
    """What ``n`` iterations do, as bytes and numbers (stopping at a test)."""
    seen = []
    for _ in range(n):
        it = lm.iterate()
        lm.accept(it)
        seen.append(
            (
                None if it.trial is None else it.trial.tobytes(),
                it.gradient.tobytes(),
                it.lam,
                it.test,
                it.trials,
                it.held,
                lm.p.tobytes(),
                lm.sum_squares,
                lm.delta,
                lm.lam,
                lm.diag.tobytes(),
                lm.res.n_fev,
                lm.res.n_jev,
            )
        )
        if it.test:
            break
    return seen


@pytest.mark.parametrize("box", BOXES.values(), ids=BOXES)
def test_a_loaded_solver_continues_like_the_original_bit_for_bit(box):
    original = _solver(*box)
    _run(original, 2)
    state = original.state_dict()
    assert set(state) == set(STATE_KEYS)
    restored = _solver(*box)  # a fresh solver at the start, then the state laid over it
    restored.load_state_dict(state)
    expected = _run(original, 6)
    assert len(expected) >= 3  # the comparison covers several iterations, not a fit that has already stopped
    assert _run(restored, 6) == expected
    # The state matters: a fresh solver at the same point (no trust radius, scaling or damping yet) goes elsewhere.
    fresh = _solver(*box, start=state["p"])
    assert _run(fresh, 6) != expected


def test_the_state_is_a_copy_both_ways():
    lm = _solver()
    _run(lm, 1)
    state = lm.state_dict()
    p, diag = lm.p.copy(), lm.diag.copy()
    state["p"].zero_()
    state["diag"].zero_()
    assert np.array_equal(lm.p, p) and np.array_equal(lm.diag, diag)  # editing the dict leaves the solver alone
    other = _solver()
    other.load_state_dict(lm.state_dict())
    other.p[:] = 0.0
    other.diag[:] = 0.0
    assert np.array_equal(lm.p, p) and np.array_equal(lm.diag, diag)  # and the loaded solver shares nothing


def test_before_the_first_iteration_the_state_has_no_scaling_and_round_trips():
    lm = _solver()
    state = lm.state_dict()
    assert state["diag"] is None and math.isnan(state["delta"]) and state["n_jev"] == 0
    restored = _solver(start=torch.zeros(3, dtype=torch.float64))
    restored.load_state_dict(state)
    assert _run(restored, 4) == _run(lm, 4)


@pytest.mark.parametrize("key", STATE_KEYS)
def test_a_state_missing_a_key_is_refused_by_name(key):
    lm = _solver()
    _run(lm, 1)
    state = lm.state_dict()
    del state[key]
    before = lm.state_dict()
    with pytest.raises(ValueError, match=f"lacks '{key}'"):
        _solver().load_state_dict(state)
    with pytest.raises(ValueError, match=f"lacks '{key}'"):
        lm.load_state_dict(state)
    after = lm.state_dict()  # a refused state changes nothing
    assert after["p"].equal(before["p"]) and after["diag"].equal(before["diag"])
    assert [after[k] for k in ("sum_squares", "delta", "lam", "n_fev", "n_jev")] == [
        before[k] for k in ("sum_squares", "delta", "lam", "n_fev", "n_jev")
    ]


@pytest.mark.parametrize("key", ["p", "diag"])
def test_a_state_of_another_size_is_refused(key):
    lm = _solver()
    _run(lm, 1)
    state = lm.state_dict()
    state[key] = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"{key!r} of shape \(4,\).*expects \(3,\)"):
        _solver().load_state_dict(state)

"""``Bounds.check_start`` looks only at parameters with a finite bound (an entry never lies outside
``(-inf, inf)``): every start outside a box is still named, and the unbounded ones never are."""

from __future__ import annotations

import math

import pytest
import torch

from gradfit.errors import ModelError
from gradfit.models.builder import build_model
from gradfit.train.bounds import Bounds


def params(**values):
    return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in values.items()}


def outside(box: Bounds, start) -> list[str]:
    """The oracle: every entry compared with its box, one by one, in plain floats."""
    bad = []
    for name, value in start.items():
        flat = box.model.spec(name).flat_names()
        for f, v, lo, hi in zip(
            flat, value.reshape(-1).tolist(), box.lower[name].reshape(-1).tolist(), box.upper[name].reshape(-1).tolist()
        ):
            if v < lo or v > hi:
                bad.append(f"{f} = {v:g} is outside [{lo:g}, {hi:g}]")
    return bad


@pytest.mark.parametrize(
    ("spec", "start"),
    [
        (None, {"a": 5.0, "b": -1e300}),
        (None, {"a": math.nan, "b": math.inf}),
        ({"a": (0, 1)}, {"a": 2.0, "b": 1e300}),
        ({"a": (0, 1)}, {"a": 0.5, "b": -7.0}),
        ({"b": (None, 0)}, {"a": -3.0, "b": 0.5}),
        ({"a": (0, 1), "b": (2, 3)}, {"a": -1.0, "b": 4.0}),
        ({"a": (0, 1)}, {"a": math.nan, "b": 0.0}),
        ({"a": (None, None)}, {"a": 1e308, "b": 0.0}),
    ],
)
def test_the_starts_named_are_those_outside_their_boxes(spec, start):
    model = build_model("a*x + b", ("x",))
    box = Bounds(model, spec)
    values = params(**start)
    expected = outside(box, values)
    if not expected:
        box.check_start(values)
        return
    with pytest.raises(ModelError) as err:
        box.check_start(values)
    assert str(err.value) == (
        "The initial values must lie within the bounds: "
        + "; ".join(expected)
        + ". Give initial values inside them with init=... (--init)."
    )


def test_a_vector_parameter_bounded_in_one_entry():
    model = build_model("poly2", ("x",))
    name = model.param_names[0]
    flat = model.spec(name).flat_names()
    box = Bounds(model, {flat[0]: (0, 1)})
    start = {s.name: torch.full(s.shape, 5.0, dtype=torch.float64) for s in model.specs}
    with pytest.raises(ModelError, match=rf"{flat[0]} = 5 is outside \[0, 1\]") as err:
        box.check_start(start)
    assert str(err.value).count("is outside") == len(outside(box, start)) == 1


@pytest.mark.parametrize("entries", [1, 3, 64, 65, 200])
@pytest.mark.parametrize("where", [None, 0, -1])
def test_a_finite_bound_anywhere_counts_for_small_and_large_parameters(entries, where):
    from gradfit.train.bounds import _finite_somewhere

    t = torch.full((entries,), math.inf, dtype=torch.float64)
    t[::2] = -math.inf
    if where is not None:
        t[where] = 0.5
    assert _finite_somewhere(t) == bool(torch.isfinite(t).any()) == (where is not None)
    nan = torch.full((entries,), math.nan, dtype=torch.float64)
    assert _finite_somewhere(nan) == bool(torch.isfinite(nan).any()) is False
    assert _finite_somewhere(torch.tensor(2.0, dtype=torch.float64)) is True

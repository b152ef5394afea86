"""A Python number given as a float64 fit's initial value takes a short path
(:func:`gradfit.train.initial_values.initial_params`): the tensor and the errors must be the general path's (which
a numpy scalar still takes), to the bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradfit.errors import ModelError
from gradfit.models.builder import build_model
from gradfit.train.initial_values import initial_params

VALUES = [0, 1, -7, 2**53, -(2**53), 2**60, 0.0, -0.0, 1.5, -2.5e-300, 5e-324, 1.7976931348623157e308, True]


def start(model, init, dtype=torch.float64):
    x = torch.linspace(0.0, 1.0, 5, dtype=dtype)[:, None]
    return initial_params(model, init, torch.Generator().manual_seed(0), dtype, x=x, y=x[:, 0])


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("formula", ["a*x + b", "linear"])
def test_a_python_number_gives_the_general_paths_tensor(value, formula):
    model = build_model(formula, ("x",))
    name = model.param_names[0]
    ours = start(model, {name: value})[name]
    general = start(model, {name: np.float64(value) if not isinstance(value, bool) else np.bool_(value)})[name]
    assert ours.dtype == general.dtype == torch.float64 and ours.shape == general.shape
    assert ours.view(torch.int64).tolist() == general.view(torch.int64).tolist()  # -0.0 and subnormals included
    assert not ours.requires_grad and ours.is_contiguous()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_number_that_is_not_finite_is_refused_with_the_same_message(value):
    model = build_model("a*x + b", ("x",))
    with pytest.raises(ModelError) as ours:
        start(model, {"a": value})
    with pytest.raises(ModelError) as general:
        start(model, {"a": float(value)})  # the message names the value as given
    assert str(ours.value) == f"The initial value of 'a' must be finite. Got {value!r} instead."
    with pytest.raises(ModelError, match="must be finite"):
        start(model, {"a": np.float64(value)})
    assert str(general.value) == str(ours.value)


def test_float32_and_indexed_entries_keep_the_general_path():
    model = build_model("a*x + b", ("x",))
    assert start(model, {"a": 1e-50}, torch.float64)["a"].item() == 1e-50
    with pytest.raises(Exception, match="rounds to 0 in float32"):
        start(model, {"a": 1e-50}, torch.float32)

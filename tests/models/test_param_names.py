"""Flat parameter names: ``W[i,j]`` names the entry that ``reshape(-1)`` puts at that position, for any shape."""

from __future__ import annotations

import pytest
import torch

from gradfit.models.base import ParamSpec, flatten_params, unflatten_params


@pytest.mark.parametrize("shape", [(), (1,), (5,), (3, 4), (2, 3, 4), (1, 1, 2)])
def test_each_name_indexes_the_entry_at_its_flat_position(shape):
    spec = ParamSpec("W", shape)
    names = spec.flat_names()
    values = torch.arange(spec.size).reshape(shape)
    assert len(names) == spec.size == len(set(names))
    for k, name in enumerate(names):
        if shape == ():
            assert name == "W"
            continue
        index = tuple(int(i) for i in name[2:-1].split(","))
        assert name.startswith("W[") and int(values[index]) == k


def test_a_large_tensor_is_named_and_round_trips():
    spec = ParamSpec("W1", (256, 256))  # 65,536 entries: the names must not cost rows x rows comparisons
    names = spec.flat_names()
    assert names[0] == "W1[0,0]" and names[1] == "W1[0,1]" and names[256] == "W1[1,0]" and names[-1] == "W1[255,255]"
    w = torch.randn(256, 256, dtype=torch.float64)
    flat = flatten_params([spec], {"W1": w})
    assert list(flat) == names
    torch.testing.assert_close(unflatten_params([spec], flat)["W1"], w, rtol=0, atol=0)

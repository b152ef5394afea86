"""``is_row_set(obj)`` answers "no" at once for objects without ``chunks``: it must give the protocol's own answer
(``isinstance(obj, RowSet)``) for every kind of object a fit meets, row sets included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.helpers.row_sets import HiddenRows

from gradfit.data.convert import as_dataset
from gradfit.rowpass import MemoryRows, RowSet, is_row_set, rows_triple


class ChunksOnly:
    def chunks(self):
        return iter(())


def objects():
    ds = as_dataset({"x": np.arange(5.0), "y": np.arange(5.0)}, x=["x"], y="y", dtype=torch.float64)
    return {
        "dataset": ds,
        "tensor": torch.ones(3),
        "memory rows": MemoryRows(torch.ones(3)),
        "chunks only": ChunksOnly(),
        "hidden rows": HiddenRows(ds),
        "none": None,
        "array": np.ones(3),
    }


@pytest.mark.parametrize("name", list(objects()))
def test_the_quick_check_gives_the_protocols_answer(name):
    obj = objects()[name]
    assert is_row_set(obj) == isinstance(obj, RowSet)


def test_a_row_set_is_one_and_rows_triple_tells_them_apart():
    ds = objects()["dataset"]
    hidden = HiddenRows(ds)
    assert is_row_set(hidden) and not is_row_set(ds)
    assert rows_triple(hidden) == (hidden, None, None)
    x, y, w = rows_triple(ds)
    assert x is ds.x and y is ds.y and w is None

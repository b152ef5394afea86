"""Data at the door: files and arrays in, checked float tensors out.

The names below are loaded on first use (PEP 562, :mod:`gradfit.lazy_exports`): ``synthetic``
imports pandas, which a command-line fit of a plain numeric CSV file never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfit.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from gradfit.data import synthetic as synthetic
    from gradfit.data.convert import as_dataset as as_dataset
    from gradfit.data.dataset import Dataset as Dataset
    from gradfit.data.io import read_table as read_table

__all__ = ["Dataset", "as_dataset", "read_table", "synthetic"]

_EXPORTS = {"Dataset": "gradfit.data.dataset", "as_dataset": "gradfit.data.convert", "read_table": "gradfit.data.io"}

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, {"synthetic": "gradfit.data.synthetic"}, __all__)

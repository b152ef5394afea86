"""Data at the door: files and arrays in, checked float tensors out."""

from gradfit.data import synthetic
from gradfit.data.convert import as_dataset
from gradfit.data.dataset import Dataset
from gradfit.data.io import read_table

__all__ = ["Dataset", "as_dataset", "read_table", "synthetic"]

"""Collection settings for the whole suite (tests/ and the doctests in src/)."""

import importlib.util

import matplotlib

matplotlib.use("Agg")  # no display on CI machines; every picture is drawn off-screen

# gradfit.sklearn needs the optional scikit-learn; its doctests are skipped without it.
collect_ignore = [] if importlib.util.find_spec("sklearn") else ["src/gradfit/sklearn.py"]

"""Issue 13's check on 10^7 rows: a Parquet file streamed at every pass fits as the file read whole (float64, 1e-10:
full-batch sgd and Levenberg-Marquardt with its error bars), and the streamed fit's peak memory stays within a
stated bound above the interpreter's, measured in a fresh interpreter (Linux's VmHWM), not assumed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.helpers.peak import needs_proc, run_measured

import gradfit

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Ran the full budget")]

ROWS = 10**7
FORMULA = "a*exp(-b*x) + c + d*x"
START = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
CASES = {
    "sgd": {"optimizer": "sgd", "lr": 0.05, "steps": 4, "dtype": "float64"},
    "lm": {"optimizer": "lm", "dtype": "float64"},
}
#: Above the interpreter's memory after its imports. The file's two float64 columns hold 160 MB; reading it whole
#: for the in-memory fit takes more than twice that. A streamed fit holds one chunk of rows and its Jacobian.
PEAK_BOUND = 300e6

MEASURE = """
import sys, warnings
import torch, gradfit
warnings.simplefilter("ignore")
import pyarrow.parquet, gradfit.api, gradfit.analysis.fit_analysis, gradfit.data.file_rows  # noqa: the imports
model, init, options = json.loads(sys.argv[2])
reset_peak()
r = gradfit.fit(model, sys.argv[1], y="y", init=init, stream=True, **options)
print_measured(params=r.flat_params, stderr=r.uncertainty["stderr"], loss=r.loss, steps=r.steps, n=r.data["n"])
"""


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.linspace(0.0, 4.0, ROWS)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + 0.05 * np.random.default_rng(7).standard_normal(ROWS)
    path = tmp_path_factory.mktemp("big") / "big.parquet"
    pq.write_table(pa.table({"x": x, "y": y}), path, row_group_size=10**6)
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_ten_million_streamed_rows_fit_as_the_file_read_whole_in_bounded_memory(big, name):
    needs_proc()
    options = CASES[name]
    streamed = run_measured(MEASURE, big, json.dumps([FORMULA, START, options]))
    assert streamed["peak"] < PEAK_BOUND, f"the streamed fit's peak was {streamed['peak'] / 1e6:.0f} MB"
    whole = gradfit.fit(FORMULA, big, y="y", init=START, stream=False, **options)
    assert streamed["n"] == ROWS and streamed["steps"] == whole.steps
    for key, value in whole.flat_params.items():
        assert streamed["params"][key] == pytest.approx(value, rel=1e-10)
    if whole.uncertainty["ok"]:
        assert streamed["stderr"] == pytest.approx(whole.uncertainty["stderr"], rel=1e-8)
    else:  # past the automatic budget of error bars (rows x parameters): neither computes them
        assert streamed["stderr"] == whole.uncertainty["stderr"]
    assert streamed["loss"] == pytest.approx(whole.loss, rel=1e-10)

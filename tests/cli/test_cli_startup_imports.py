"""A command-line fit imports what it uses: not torch._dynamo, sympy, scipy, pandas or pyarrow (issue 11's start-up).

Not a timing test: the child process runs ``gradfit fit`` and writes which of those modules it
imported; ``torch.func`` (the first transform imports torch._dynamo) and a ``grad_outputs`` tensor
(torch checks it with torch.fx's symbolic shapes, which import sympy) are what would bring them.
A plain numeric CSV file is read without pandas (gradfit.data.plain_csv), the intervals' t quantile is
computed without scipy (gradfit.analysis.quantiles), and a small history.csv is written without
pyarrow (gradfit.numbers_text); a file pandas must read still works (the last test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.imports import imported_by

UNUSED = ("torch._dynamo", "sympy", "scipy", "matplotlib", "pandas", "pyarrow")

CHILD = """
import json, runpy, sys
sys.argv = ["gradfit"] + json.loads(sys.argv[1])
try:
    runpy.run_module("gradfit", run_name="__main__")
except SystemExit as done:
    print(done.code or 0)  # SystemExit(None) is a success
else:
    print(0)
"""


def _csv(path: Path, rows: int = 100) -> Path:
    x = np.linspace(0.0, 4.0, rows)
    y = 2.5 * np.exp(-1.3 * x) + 0.5 * x + 1.0 + 0.01 * np.random.default_rng(0).standard_normal(rows)
    path.write_text("x,y\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in zip(x, y)))
    return path


def _run(args: list[str]) -> dict:
    imported, printed = imported_by(CHILD, UNUSED, [json.dumps(args)])
    return {"code": int(printed[-1]), "imported": imported}


@pytest.mark.parametrize("optimizer", [None, "lm"])
def test_a_small_cli_fit_imports_none_of_them(tmp_path, optimizer):
    data = _csv(tmp_path / "data.csv")
    args = ["fit", str(data), "--model", "a*exp(-b*x) + c*x + d", "--y", "y", "--quiet", "--out", str(tmp_path / "run")]
    out = _run(args + (["--optimizer", optimizer] if optimizer else []))
    assert out["code"] == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["config"]["optimizer"] == "lm"  # the automatic choice for this problem too
    assert result["uncertainty"]["ok"]  # the analysis ran, its t quantile too
    assert out["imported"] == {m: False for m in UNUSED}


def test_the_benchmarks_cli_fit_of_a_zoo_model_imports_none_of_them(tmp_path):
    """bench/peers.py row 6: ``gradfit fit data.csv --y y --model linear`` on a 100-row file, files written."""
    data = _csv(tmp_path / "data.csv")
    out = _run(["fit", str(data), "--y", "y", "--model", "linear", "--out", str(tmp_path / "run")])
    assert out["code"] == 0 and out["imported"] == {m: False for m in UNUSED}
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert history[0].startswith("step,") and len(history) > 1
    assert json.loads((tmp_path / "run" / "result.json").read_text())["uncertainty"]["ok"]


def test_a_file_that_needs_pandas_is_still_read(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x;y\n" + "".join(f"{i},5;{2 * i + 1},25\n" for i in range(20)))  # decimal commas
    out = _run(["fit", str(data), "--y", "y", "--model", "linear", "--quiet", "--out", str(tmp_path / "run")])
    assert out["code"] == 0 and out["imported"]["pandas"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["data"]["read"]["decimal"] == ","

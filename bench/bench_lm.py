"""Levenberg-Marquardt's whole ``gradfit.fit`` call against ``scipy.optimize.curve_fit``, and the CLI's start-up.

Both fit the same 4-parameter nonlinear model ``a*exp(-b*x) + c*x + d`` from the same start, in
float64, at 20, 10^4 and 10^6 rows; gradfit's call includes everything a user gets back (the
uncertainties, metrics and verdict: curve_fit returns ``pcov`` too). The two are alternated in
one process and the ratio of the medians is printed (gradfit / curve_fit: below 1, gradfit is
faster). The start-up row times ``gradfit fit`` on a 100-row CSV as a whole process against
``python -c "import torch"``, alternated likewise. Run ``python bench/bench_lm.py`` (with
``OMP_NUM_THREADS=1`` for the one-thread figures); :func:`main` returns the rows.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMULA = "a*exp(-b*x) + c*x + d"
START = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
TRUE = (2.5, 1.3, 0.5, 1.0)


def problem(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of the model at :data:`TRUE` with 1% noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 4.0, n)
    a, b, c, d = TRUE
    return x, a * np.exp(-b * x) + c * x + d + 0.01 * rng.standard_normal(n)


def _model(x, a, b, c, d):
    return a * np.exp(-b * x) + c * x + d


def _curve_fit(x: np.ndarray, y: np.ndarray):
    from scipy.optimize import curve_fit

    return curve_fit(_model, x, y, p0=list(START.values()))


def _gradfit(x: np.ndarray, y: np.ndarray):
    import gradfit

    return gradfit.fit(FORMULA, {"x": x, "y": y}, y="y", init=START, optimizer="lm", dtype="float64")


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def fit_row(n: int, repeats: int) -> dict:
    """Median seconds of gradfit's and curve_fit's whole call, alternated, and their ratio."""
    x, y = problem(n)
    popt, _ = _curve_fit(x, y)
    result = _gradfit(x, y)  # also the warm-up of both
    fitted = np.array([float(result.params[k]) for k in START])
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_timed(_gradfit, x, y))
        theirs.append(_timed(_curve_fit, x, y))
    g, s = statistics.median(ours), statistics.median(theirs)
    agree = float(np.max(np.abs(fitted - popt) / np.maximum(np.abs(popt), 1e-300)))
    return {
        "work": f"lm, 4 parameters, {n} rows, whole fit()",
        "gradfit_s": g,
        "peer_s": s,
        "ratio": g / s,
        "peer": "curve_fit",
        "max_rel_param_diff": agree,
    }


def cli_row(repeats: int) -> dict:
    """Median seconds of ``gradfit fit`` on a 100-row CSV and of ``python -c "import torch"``, alternated."""
    x, y = problem(100)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        csv.write_text("x,y\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in zip(x, y)))
        fit = [
            sys.executable,
            "-m",
            "gradfit",
            "fit",
            str(csv),
            "--model",
            FORMULA,
            "--y",
            "y",
            "--quiet",
            "--out",
            str(Path(tmp) / "runs"),
        ]
        torch_only = [sys.executable, "-c", "import torch"]
        subprocess.run(fit, check=True, capture_output=True)  # the warm-up: file caches, .pyc files
        ours, theirs = [], []
        for _ in range(repeats):
            ours.append(_timed(subprocess.run, fit))
            theirs.append(_timed(subprocess.run, torch_only))
    g, s = statistics.median(ours), statistics.median(theirs)
    return {
        "work": "gradfit fit, 100-row CSV, whole process",
        "gradfit_s": g,
        "peer_s": s,
        "ratio": g / s,
        "peer": "python -c 'import torch'",
    }


def main(sizes=(20, 10_000, 1_000_000), repeats: int = 7, cli: bool = True) -> list[dict]:
    """The rows: one per size (whole ``fit`` against ``curve_fit``) and the CLI start-up; each printed."""
    rows = []
    for n in sizes:
        rows.append(fit_row(n, max(3, repeats if n < 10**6 else repeats // 2)))
        print(_line(rows[-1]), flush=True)
    if cli:
        rows.append(cli_row(repeats))
        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    times = f"{row['gradfit_s']:10.4f} s  {row['peer']} {row['peer_s']:10.4f} s"
    return f"{row['work']:<45} {times}  ratio {row['ratio']:6.2f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="*", default=[20, 10_000, 1_000_000])
    parser.add_argument("--no-cli", action="store_true", help="leave out the start-up row")
    args = parser.parse_args()
    main(tuple(args.sizes), args.repeats, not args.no_cli)

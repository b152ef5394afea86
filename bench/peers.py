"""The rows of issue 11's table: gradfit and its peers on the same data, in the same run.

Each row function measures gradfit and a peer alternately (:func:`timing.interleaved`), checks gradfit's numbers
against an oracle (a float64 reference of the same steps for rows 1-4, ``curve_fit``'s parameters and standard errors
for row 5; a ratio between different computations means nothing), and returns the table's lines:

1. full-batch sgd step, zoo ``linear``, 10^6 / 10^7 float32 rows: against the memory floor, the seeds' hand-written
   torch loop, and (10^6) a numpy loop with the analytic gradient;
2. the same step for the formula ``a*x + b``;
3. the same step for the nonlinear formula ``a*exp(-b*x) + c`` at 10^7 rows;
4. a step on the seeds' 100-row data (``linear`` and ``a*x + b``) against the seeds' loop;
5. Levenberg-Marquardt, 4 parameters, the whole ``gradfit.fit`` call with uncertainties, against
   ``scipy.optimize.curve_fit`` (which returns ``pcov``), at 20, 10^4 and 10^6 rows;
6. ``gradfit fit`` on a 100-row CSV, the whole process, against ``python -c "import torch"``.

gradfit's time per step is ``result.timings["loop"] / result.steps``: the loop alone, without reading the data,
choosing the learning rate or the analysis after the fit, so fits of a few steps measure the step.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timing import Measure, floor_seconds, interleaved, timed

import gradfit
from gradfit.data import synthetic
from gradfit.errors import GradfitWarning

LR = 0.1  # the seeds' learning rate
SEEDS_ROWS = 100  # the seeds' dataset
LM_FORMULA = "a*exp(-b*x) + c + d*x"
LM_START = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}


@dataclass
class Line:
    """One line of the table: ``subject`` took ``seconds`` where ``peer`` took ``peer_seconds``."""

    row: str
    work: str
    subject: str
    seconds: float
    peer: str
    peer_seconds: float
    target: float | None = None  # the ratio subject / peer must not exceed it; None: a reference line
    agree: bool | None = None  # the subject's numbers equal the oracle's (see reference); None: nothing compared
    floor_rows: int | None = None  # the peer is the memory floor of reading this many rows (see Plan.floor)

    @property
    def ratio(self) -> float:
        return self.seconds / self.peer_seconds

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


@dataclass
class Plan:
    """How big and how often: the full run, or ``quick`` (fewer sizes and repeats) with rows capped at ``max_rows``."""

    bandwidth: float  # bytes per second of one read pass (timing.read_bandwidth), measured in this run
    quick: bool = False
    max_rows: int | None = None
    repeats_given: int | None = None  # every row's repeats, instead of its own

    def cap(self, rows: int) -> int:
        return rows if self.max_rows is None else min(rows, self.max_rows)

    def sizes(self, full: list[int], quick: list[int]) -> list[int]:
        return list(dict.fromkeys(self.cap(n) for n in (quick if self.quick else full)))  # capping may merge two

    def repeats(self, full: int) -> int:
        if self.repeats_given is not None:
            return self.repeats_given
        return 1 if self.quick else full

    def steps(self, rows: int) -> int:
        """Full-batch sgd steps of a fit: about 2*10^7 rows read in all (at least 8 steps); 20 at most when quick."""
        steps = max(8, min(400, 2 * 10**7 // rows))
        return min(steps, 20) if self.quick else steps

    def floor(self, rows: int, columns: int = 2) -> float:
        return floor_seconds(rows, columns, self.bandwidth)


def rows_label(n: int) -> str:
    """``10^6`` for a power of ten, else ``12,345``."""
    k = len(str(n)) - 1
    return f"10^{k}" if n == 10**k and k >= 2 else f"{n:,}"


def subject(result: gradfit.FitResult, set_up: float | None = None, note: str | None = None) -> str:
    """The name of what was timed: gradfit and the row passes its fit ran (``diagnostics["row_pass"]``), the
    one-time set-up before its first step when given (seconds), and ``note``."""
    said = list(result.diagnostics.get("row_pass") or [])
    if set_up is not None and set_up >= 1e-3:
        said.append(f"set-up {set_up:.2f} s once" if set_up >= 1 else f"set-up {set_up * 1e3:.0f} ms once")
    if note:
        said.append(note)
    return f"gradfit ({'; '.join(said)})" if said else "gradfit"


def quiet_fit(*args: Any, **kwargs: Any) -> gradfit.FitResult:
    """gradfit.fit without its not-converged warnings: a benchmark's budgets are short on purpose.

    The fit keeps its default signal handling (it is part of the call measured), so Ctrl-C or SIGTERM ends the fit
    with ``stop_reason="interrupted"``; that stops the benchmark instead of going on with the next fit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradfitWarning)
        result = gradfit.fit(*args, **kwargs)
    if result.stop_reason == "interrupted":
        raise KeyboardInterrupt
    return result


def gradfit_step(
    model: str, frame: Any, init: dict[str, Any], steps: int, row_pass: str = "auto", note: str | None = None
) -> Measure:
    """gradfit's seconds per full-batch sgd step and its final parameters.

    The step is the loop's steady state: the history's clock from the first row to the last step's, over the
    steps between (a fit's one-time set-up, such as building sufficient statistics, comes before the first row;
    :func:`subject` names it with its time).
    """

    def measure() -> tuple[float, Any]:
        r = quiet_fit(model, frame, y="y", init=init, optimizer="sgd", lr=LR, steps=steps, row_pass=row_pass)
        params = np.concatenate([np.atleast_1d(v.detach().double().numpy()) for v in r.params.values()])
        clock = r.history["time"]
        step = float(clock[r.steps - 1] - clock[0]) / (r.steps - 1)
        return step, (params, subject(r, set_up=float(clock[0]) - step, note=note))

    return measure


def seeds_loop(f: Callable, inputs: torch.Tensor, y: torch.Tensor, start: list[float], steps: int) -> Measure:
    """The seeds' update(), verbatim: loss, ``loss.item()`` (they print it), backward, ``a -= lr * grad``."""

    def measure() -> tuple[float, Any]:
        a = torch.nn.Parameter(torch.tensor(start, dtype=y.dtype))
        begin = time.perf_counter()
        for _ in range(steps):
            loss = ((y - f(inputs, a)) ** 2).mean()
            loss.item()
            loss.backward()
            with torch.no_grad():
                a.sub_(LR * a.grad)
                a.grad.zero_()
        return (time.perf_counter() - begin) / steps, a.detach().double().numpy()

    return measure


def numpy_loop(x: np.ndarray, y: np.ndarray, start: list[float], steps: int) -> Measure:
    """Full-batch gradient descent on ``a*x + b`` with the analytic gradient, in numpy (float32 rows)."""

    def measure() -> tuple[float, Any]:
        a, b = start
        n, r = len(x), np.empty_like(x)
        begin = time.perf_counter()
        for _ in range(steps):
            np.multiply(x, np.float32(a), out=r)
            r += np.float32(b)
            r -= y
            float(np.dot(r, r)) / n  # the loss, as every loop here computes it
            grad_a, grad_b = 2.0 * float(np.dot(r, x)) / n, 2.0 * float(r.sum(dtype=np.float64)) / n
            a, b = a - LR * grad_a, b - LR * grad_b
        return (time.perf_counter() - begin) / steps, np.array([a, b])

    return measure


def same(first: Any, second: Any, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    return bool(np.allclose(np.asarray(first, dtype=float), np.asarray(second, dtype=float), rtol=rtol, atol=atol))


def reference(name: str, x: torch.Tensor, y: torch.Tensor, start: list[float], steps: int) -> np.ndarray:
    """The parameters after ``steps`` sgd steps computed in float64: the oracle every loop of rows 1-4 must meet.

    A float32 loop that sums in float32 drifts from it at 10^7 rows (about 1e-2, see
    tests/train/test_fit_oracles.py), so the seeds' float32 loop is a peer for time, not for the numbers. For the
    two models linear in ``(slope, intercept)`` the trajectory follows from ``AᵀA`` and ``Aᵀy`` (``A = [x, 1]``)
    in one pass; the nonlinear model runs the seeds' loop on float64 copies.
    """
    if name == "a*exp(-b*x) + c":
        _, f, inputs_of, _, _ = MODELS[name]
        return seeds_loop(f, inputs_of(x.double()), y.double(), start, steps)()[1]
    x64, y64, n = x.double(), y.double(), len(x)
    gram = torch.tensor([[x64.dot(x64), x64.sum()], [x64.sum(), float(n)]], dtype=torch.float64)
    moment = torch.stack([x64.dot(y64), y64.sum()])
    p = torch.tensor(start, dtype=torch.float64)
    for _ in range(steps):
        p = p - LR * 2.0 / n * (gram @ p - moment)
    return p.numpy()


def linear_inputs(x: torch.Tensor) -> torch.Tensor:
    """The seeds' design matrix: the column of x and a column of ones."""
    return torch.stack([x, torch.ones_like(x)], dim=1)


MODELS: dict[str, tuple[str, Callable, Callable, dict[str, Any], list[float]]] = {
    # name in the table: (gradfit's model, the seeds' f(inputs, a), inputs from x, gradfit's init, the seeds' start)
    "linear": ("linear", lambda X, a: X @ a, linear_inputs, {"a": [1.0, 1.0]}, [1.0, 1.0]),
    "a*x + b": ("a*x + b", lambda x, a: a[0] * x + a[1], lambda x: x, {"a": 1.0, "b": 1.0}, [1.0, 1.0]),
    "a*exp(-b*x) + c": (
        "a*exp(-b*x) + c",
        lambda x, a: a[0] * torch.exp(-a[1] * x) + a[2],
        lambda x: x,
        {"a": 1.0, "b": 0.1, "c": 1.0},
        [1.0, 0.1, 1.0],
    ),
}


def compile_once(model: str, frame: Any, init: dict[str, Any]) -> float:
    """Seconds of a two-step fit with ``row_pass="compiled"``: the compile of the formula's pass, paid once per
    process (and per shape), which the timed fits after it reuse."""
    start = time.perf_counter()
    quiet_fit(model, frame, y="y", init=init, optimizer="sgd", lr=LR, steps=2, row_pass="compiled")
    return time.perf_counter() - start


def full_batch(
    plan: Plan, row: str, name: str, n: int, target: float, numpy_peer: bool = False, compiled: bool = False
) -> list[Line]:
    """One size of rows 1-3: gradfit's step against the floor and the seeds' loop (and numpy, for ``linear``).

    With ``compiled`` (row 3), gradfit is also timed with ``row_pass="compiled"``, the line the target is for: a
    fit takes the compiled pass by itself only when its rows x steps win the compile back, which the few steps
    timed here do not, so the default (eager fused) pass gets a line of its own, without the target.
    """
    model, f, inputs_of, init, start = MODELS[name]
    frame = synthetic.linear(n=n, seed=0)
    x, y = torch.tensor(frame["x"].to_numpy()), torch.tensor(frame["y"].to_numpy())
    steps = plan.steps(n)
    measures = {
        "gradfit": gradfit_step(model, frame, init, steps),
        "seeds": seeds_loop(f, inputs_of(x), y, start, steps),
    }
    if numpy_peer:
        measures["numpy"] = numpy_loop(x.numpy(), y.numpy(), start, steps)
    if compiled:
        note = f"compile {compile_once(model, frame, init):.1f} s once, row_pass='compiled'"
        measures["compiled"] = gradfit_step(model, frame, init, steps, row_pass="compiled", note=note)
    medians, outputs = interleaved(measures, plan.repeats(3))
    oracle = reference(name, x, y, start, steps)
    (params, ours) = outputs["gradfit"]
    agree = same(params, oracle)
    kind = "zoo `linear`" if name == "linear" else f"formula `{name}`"
    work = f"full-batch sgd step, {kind}, {rows_label(n)} rows, float32"
    floor = plan.floor(n)
    lines = [
        Line(row, work, ours, medians["gradfit"], "memory floor", floor, None if compiled else target, agree, n),
        Line(row, work, ours, medians["gradfit"], "seeds' torch loop", medians["seeds"], None, agree),
    ]
    if compiled:
        (params, said) = outputs["compiled"]
        lines.insert(
            0, Line(row, work, said, medians["compiled"], "memory floor", floor, target, same(params, oracle), n)
        )
    if numpy_peer:
        agree_numpy = same(outputs["numpy"], oracle)
        numpy_time = medians["numpy"]
        lines.append(
            Line(row, work, "numpy loop, analytic gradient", numpy_time, "memory floor", floor, None, agree_numpy, n)
        )
        lines.append(Line(row, work, ours, medians["gradfit"], "numpy loop", medians["numpy"], None, agree))
    return lines


def row_linear(plan: Plan) -> list[Line]:
    sizes = plan.sizes([10**6, 10**7], [10**6])
    return [line for n in sizes for line in full_batch(plan, "1", "linear", n, 2.0, numpy_peer=n == sizes[0])]


def row_formula(plan: Plan) -> list[Line]:
    return [line for n in plan.sizes([10**6, 10**7], [10**6]) for line in full_batch(plan, "2", "a*x + b", n, 2.0)]


def row_nonlinear(plan: Plan) -> list[Line]:
    return [
        line
        for n in plan.sizes([10**7], [10**6])
        for line in full_batch(plan, "3", "a*exp(-b*x) + c", n, 3.0, compiled=True)
    ]


def row_small(plan: Plan) -> list[Line]:
    """Row 4: a step on the seeds' 100 rows, where Python and bookkeeping cost more than the arithmetic."""
    frame = synthetic.linear(n=SEEDS_ROWS, seed=0)
    x, y = torch.tensor(frame["x"].to_numpy()), torch.tensor(frame["y"].to_numpy())
    steps = 50 if plan.quick else 2000
    lines = []
    for name in ("linear", "a*x + b"):
        model, f, inputs_of, init, start = MODELS[name]
        measures = {
            "gradfit": gradfit_step(model, frame, init, steps),
            "seeds": seeds_loop(f, inputs_of(x), y, start, steps),
        }
        medians, outputs = interleaved(measures, plan.repeats(5))
        kind = "zoo `linear`" if name == "linear" else f"formula `{name}`"
        work = f"sgd step on the seeds' {SEEDS_ROWS}-row data, {kind}"
        (params, ours) = outputs["gradfit"]
        agree = same(params, reference(name, x, y, start, steps))
        lines.append(Line("4", work, ours, medians["gradfit"], "seeds' torch loop", medians["seeds"], 1 / 3, agree))
    return lines


def lm_data(n: int) -> dict[str, np.ndarray]:
    """A decay on a slope with noise: ``2.5 exp(-1.3 x) + 0.5 + 0.2 x``, x in [0, 4], float64."""
    x = np.linspace(0.0, 4.0, n)
    noise = 0.05 * np.random.default_rng(0).standard_normal(n)
    return {"x": x, "y": 2.5 * np.exp(-1.3 * x) + 0.5 + 0.2 * x + noise}


def lm_model(x: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    return a * np.exp(-b * x) + c + d * x


def gradfit_lm(data: dict[str, np.ndarray]) -> Measure:
    """The whole ``gradfit.fit`` call: Levenberg-Marquardt, then the standard errors."""

    def measure() -> tuple[float, Any]:
        seconds, r = timed(lambda: quiet_fit(LM_FORMULA, data, y="y", init=LM_START, optimizer="lm", uncertainty=True))
        return seconds, (list(r.flat_params.values()), r.uncertainty["stderr"], subject(r))

    return measure


def curve_fit_peer(data: dict[str, np.ndarray]) -> Measure:
    """``scipy.optimize.curve_fit`` from the same start; its ``pcov`` gives the standard errors."""
    from scipy.optimize import curve_fit

    def measure() -> tuple[float, Any]:
        seconds, (p, pcov) = timed(lambda: curve_fit(lm_model, data["x"], data["y"], p0=list(LM_START.values())))
        return seconds, (list(p), list(np.sqrt(np.diag(pcov))))

    return measure


def row_lm(plan: Plan) -> list[Line]:
    """Row 5: targets 3x curve_fit at 20 rows, 1x at 10^4, 0.5x at 10^6."""
    cases = [(20, 3.0, 15), (10**4, 1.0, 7), (10**6, 0.5, 3)]  # rows, target, repeats
    lines, done = [], set()
    for full, target, repeats in cases[:2] if plan.quick else cases:
        n = plan.cap(full)
        if n in done:
            continue
        done.add(n)
        data = lm_data(n)
        measures = {"gradfit": gradfit_lm(data), "curve_fit": curve_fit_peer(data)}
        medians, outputs = interleaved(measures, plan.repeats(repeats))
        (p_ours, se_ours, ours), (p_peer, se_peer) = outputs["gradfit"], outputs["curve_fit"]
        agree = same(p_ours, p_peer, rtol=1e-5, atol=1e-8) and same(se_ours, se_peer, rtol=1e-3, atol=1e-10)
        work = f"Levenberg-Marquardt, 4 parameters, {rows_label(n)} rows, whole fit() with uncertainties"
        lines.append(Line("5", work, ours, medians["gradfit"], "curve_fit", medians["curve_fit"], target, agree))
    return lines


def same_gradfit_env() -> dict[str, str]:
    """The environment with this process's gradfit first on the path, so the CLI runs the code being measured."""
    src = str(Path(gradfit.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def process(command: list[str], env: dict[str, str], done: Callable[[int], bool]) -> Measure:
    """The wall-clock seconds of a whole process, and whether it did its work (``done(returncode)``)."""

    def measure() -> tuple[float, Any]:
        run = lambda: subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: E731
        seconds, finished = timed(run)
        return seconds, done(finished.returncode)

    return measure


def row_cli(plan: Plan) -> list[Line]:
    """Row 6: ``gradfit fit`` on the seeds' data saved as CSV, start to exit, against importing torch alone."""
    env = same_gradfit_env()
    with tempfile.TemporaryDirectory(prefix="gradfit-bench-") as tmp:
        csv = Path(tmp) / "data.csv"
        synthetic.linear(n=SEEDS_ROWS, seed=0).to_csv(csv, index=False)
        runs = itertools.count()

        def fit_command() -> list[str]:
            out = Path(tmp) / f"run-{next(runs)}"
            return [
                sys.executable,
                "-m",
                "gradfit",
                "fit",
                str(csv),
                "--y",
                "y",
                "--model",
                "linear",
                "--out",
                str(out),
            ]

        def fit_measure() -> tuple[float, Any]:
            command = fit_command()
            seconds, ok = process(command, env, lambda code: code == 0)()
            return seconds, ok and (Path(command[-1]) / "result.json").is_file()

        import_torch = process([sys.executable, "-c", "import torch"], env, lambda code: code == 0)
        medians, outputs = interleaved({"gradfit": fit_measure, "torch": import_torch}, plan.repeats(5))
    agree = bool(outputs["gradfit"] and outputs["torch"])
    work = f"`gradfit fit` on a {SEEDS_ROWS}-row CSV, whole process"
    return [Line("6", work, "gradfit", medians["gradfit"], '`python -c "import torch"`', medians["torch"], 1.5, agree)]


#: The table's rows: number -> (what it measures, the function measuring it).
ROWS: dict[str, tuple[str, Callable[[Plan], list[Line]]]] = {
    "1": ("full-batch sgd step, zoo linear, vs the memory floor, the seeds' loop and numpy", row_linear),
    "2": ("full-batch sgd step, formula a*x + b, vs the memory floor", row_formula),
    "3": ("full-batch sgd step, formula a*exp(-b*x) + c, vs the memory floor", row_nonlinear),
    "4": ("sgd step on the seeds' 100 rows vs the seeds' loop", row_small),
    "5": ("Levenberg-Marquardt with uncertainties vs scipy's curve_fit", row_lm),
    "6": ("gradfit fit, whole process, vs importing torch", row_cli),
}


def warm_up() -> None:
    """Pay once, before any timing, the first-use costs (lazy imports, first dispatches) a fit would pay once."""
    frame = synthetic.linear(n=1000, seed=1)
    for model, _, _, init, _ in MODELS.values():
        quiet_fit(model, frame, y="y", init=init, optimizer="sgd", lr=LR, steps=3)
    quiet_fit(LM_FORMULA, lm_data(20), y="y", init=LM_START, optimizer="lm", uncertainty=True)

"""A generated corpus over ``gradfit sweep`` and ``gradfit fit --group`` (the batched commands), as
tests/test_cli_corpus.py is over ``gradfit fit``.

Every documented option of each command is tried inside, at and beyond its range and with nonsense, alone and in
random combinations, on small data (data edge cases included: groups of one row, a group column of NaN, strings or
integers, the group column as the target, NaN in x or y, one group, many tiny groups; models with vector
parameters). Whatever the options, the command must end in one of its documented ways
(:func:`helpers.cli_corpus.invoke_checked`): exit 2 with a message naming an option given and nothing written, or
exit 0/1 with its table written whole: ``sweep.csv`` with one row per member (learning rates x optimizers x
seeds), or ``groups.csv`` with one row per group and a strict-JSON ``result.json``. Exit 0 must mean what the
command says: a member that descended, a group that converged.

The default run tries a few dozen combinations of each command; every value of every option alone, and hundreds of
combinations, are marked ``slow``: ``pytest -m slow tests/test_cli_corpus_batched.py``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfit.cli.sweep_cmd import parse_lrs
from gradfit.data.io import read_table
from gradfit.experiments.sweeps import descended
from gradfit.optim.batched_lm import STATUS
from helpers.cli_corpus import BIG, NUMBERS, SETTINGS, invoke_checked, strict_json


@dataclass(frozen=True)
class Case:
    """Data, its target and a model with its parameters' names (for --init, --fix, --bound, --param); for a grouped
    fit, the group column. ``refused``: for data refused whatever the options, the message's fragment saying why."""

    data: str
    y: str
    model: str
    params: tuple[str, ...]
    group: str = ""
    refused: str = ""
    x: str = ""  # --x, unless drawn (the zoo's one-input models on data with several columns)


# ---- data files of the edge cases, written once into a folder of their own ----------------------------------------

_FILES = Path(tempfile.mkdtemp(prefix="corpus-batched-data-"))  # named at collection (the cases' ids show them)
atexit.register(shutil.rmtree, _FILES, ignore_errors=True)


def _wells(groups: int, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keys = np.repeat([f"G{g:03d}" for g in range(groups)], n)
    x = np.tile(np.linspace(0, 4, n), groups)
    a = np.repeat(rng.uniform(1, 4, groups), n)
    y = a * np.exp(-0.5 * x) + 1 + rng.normal(0, 0.02, groups * n)
    w = np.where(keys == "G000", 0.0, 1.0)  # a group whose rows all weigh 0, and one whose weights go negative
    w_neg = np.where(keys == "G001", -1.0, 1.0)
    return pd.DataFrame({"well": keys, "x": x, "y": y, "s": 0.02, "zero_w": w, "neg_w": w_neg})


def _file(name: str, frame: pd.DataFrame) -> str:
    path = _FILES / name
    if not path.exists():
        frame.to_csv(path, index=False)
    return str(path)


def _edge_files() -> dict[str, str]:
    base = _wells(4, 8)
    one_row = pd.concat([base, _wells(1, 1, seed=5).assign(well="LONE")], ignore_index=True)
    nan_key = base.astype({"well": object})
    nan_key.loc[3, "well"] = np.nan
    int_key = base.assign(well=base["well"].str[1:].astype(int))
    mixed_key = base.assign(well=[k if i % 3 else str(i) for i, k in enumerate(base["well"])])
    nan_xy = base.copy()
    nan_xy.loc[[2, 11], "x"] = np.nan
    nan_xy.loc[[5, 20], "y"] = np.nan
    return {
        "one_row": _file("one_row.csv", one_row),
        "nan_key": _file("nan_key.csv", nan_key),
        "int_key": _file("int_key.csv", int_key),
        "mixed_key": _file("mixed_key.csv", mixed_key),
        "nan_xy": _file("nan_xy.csv", nan_xy),
        "single": _file("single.csv", _wells(1, 12)),
        "tiny": _file("tiny.csv", _wells(150, 3)),
        "key_is_y": _file("key_is_y.csv", base),
        "lone_rows": _file("lone_rows.csv", _wells(6, 1)),
        "inf_key": _file("inf_key.csv", base.assign(well=np.repeat([-np.inf, 0.5, 2.0, np.inf], 8))),
        "bool_key": _file("bool_key.csv", base.assign(well=np.repeat([True, False], 16))),
        # a group whose x is constant (singular), numbers near overflow, x near underflow and y constant
        "const_x": _file("const_x.csv", base.assign(x=np.where(base["well"] == "G000", 2.0, base["x"]))),
        "huge": _file("huge.csv", base.assign(x=np.linspace(0, 1e200, 32), y=np.linspace(-1e300, 1e300, 32))),
        "tiny_x": _file("tiny_x.csv", base.assign(x=np.linspace(0, 1e-300, 32), y=5.0)),
    }


FILES = _edge_files()
DECAY = "a*exp(-b*x) + c"
ABC = ("a", "b", "c")

GROUPED = [
    Case("builtin:wells?groups=5&n=10", "y", DECAY, ABC, "well"),
    Case("builtin:wells?groups=3&n=6", "y", "exponential", ABC, "well", x="x"),
    Case("builtin:wells?groups=4&n=8&seed=2", "y", "linear", ("a[0]", "a[1]"), "well", x="x"),
    Case("builtin:wells?groups=3&n=5", "y", "poly2", ("c0", "c1", "c2"), "well", x="x"),
    Case(FILES["one_row"], "y", DECAY, ABC, "well"),
    Case(FILES["nan_key"], "y", DECAY, ABC, "well", refused="missing"),
    Case(FILES["int_key"], "y", DECAY, ABC, "well"),
    Case(FILES["mixed_key"], "y", DECAY, ABC, "well"),
    Case(FILES["nan_xy"], "y", DECAY, ABC, "well", refused="nan"),
    Case(FILES["single"], "y", DECAY, ABC, "well"),
    Case(FILES["tiny"], "y", "a*x + b", ("a", "b"), "well"),
    Case(FILES["key_is_y"], "y", "a*x + b", ("a", "b"), "y", refused="is the target"),
    Case(FILES["lone_rows"], "y", DECAY, ABC, "well"),
    Case(FILES["inf_key"], "y", DECAY, ABC, "well"),
    Case(FILES["bool_key"], "y", "a*x + b", ("a", "b"), "well"),
    Case(FILES["const_x"], "y", DECAY, ABC, "well"),
    Case(FILES["huge"], "y", DECAY, ABC, "well"),
    Case(FILES["tiny_x"], "y", "poly2", ("c0", "c1", "c2"), "well", x="x"),
]

SWEEPS = [
    Case("builtin:linear?n=30", "y", "a*x + b", ("a", "b")),
    Case("builtin:linear?n=40&seed=3", "y", "linear", ("a[0]", "a[1]")),
    Case("builtin:linear?n=25", "y", "poly2", ("c0", "c1", "c2")),
    Case("builtin:linear?n=20", "y", "mlp", ("W0", "b0", "W1", "b1", "W2", "b2")),
    Case("builtin:blobs?n=40", "label", "logistic", ("w[0]", "w[1]")),
    Case("builtin:linear?n=2", "y", "a*x + b", ("a", "b")),  # as many rows as parameters
    Case("builtin:linear?n=1", "y", "a*x + b", ("a", "b"), refused="1 row"),
    Case(FILES["nan_xy"], "y", DECAY, ABC, refused="nan"),
    Case(FILES["tiny"], "y", "a*x + b", ("a", "b")),
    Case(FILES["huge"], "y", "a*x + b", ("a", "b"), refused="too large for float32"),  # unless --dtype float64
    Case(FILES["tiny_x"], "y", "linear", ("a[0]", "a[1]"), x="x"),
    Case(FILES["const_x"], "y", DECAY, ABC),
]


def _per_params(values: tuple[str, ...]):
    return lambda c: [f"{p}={v}" for p in (*c.params[:2], "zz") for v in values] + ["=1", "noequals"]


def _fixes(c: Case) -> list[str]:
    return [*c.params[:2], "zz", ",".join(c.params), ""]


def _bounds(c: Case) -> list[str]:
    pairs = (("0", ""), ("", "0"), ("-10", "10"), ("5", "1"), ("nan", "1"), ("1", "1"))
    return [f"{p}={lo}:{hi}" for p in (c.params[0], "zz") for lo, hi in pairs]


#: The options both commands share, with the values tried.
COMMON: dict[str, list | object] = {
    "--loss": ["mse", "mae", "huber", "cross_entropy", "bce", "msee", ""],
    "--momentum": ["0", "0.5", "0.9", "1", "-0.1", "2", "nan"],
    "--steps": ["-1", "0", "1", "5", "200", str(BIG), "1.5"],
    "--tol": ["0", "-1", "1e-12", "1e-6", "1", "nan", "inf"],
    "--target-loss": ["-inf", "-1", "0", "0.1", "1e300", "nan"],
    "--dtype": ["float32", "float64", "float16", "double", ""],
    "--x": ["x", "zz", "x,x", "", "y"],
    "--init": _per_params(("0", "1", "1e39", "-1e300", "nan", "inf")),
    "--fix": _fixes,
    "--param": ["a", "zz", "a,b,c", "x", ""],
    # reading the data (built-in data has nothing to read: the file cases take them)
    "--sep": [",", ";", "tab", "whitespace", "|", "", "ab"],
    "--decimal": [".", ",", "x", ""],
    "--thousands": [".", ",", "", "ab"],
    "--encoding": ["utf-8", "latin-1", "utf-16", "nope", ""],
    "--dates": ["x", "zz", "well", ""],
    "--date-unit": ["days", "auto", "fortnights", ""],
    "--date-origin": ["2000-01-01", "abc", ""],
    "--date-format": ["%Y-%m-%d", "%Q", ""],
}
READ_FLAGS = ["--no-header", "--dayfirst", "--monthfirst"]

SWEEP_OPTIONS: dict[str, list | object] = {
    **COMMON,
    "--lr": [
        "0.01",
        "0.01,0.1,0.5",
        "1e-4:1:5",
        "1e-4:1:1",
        "0",
        "0,0.1",
        "-1",
        "-0.1,0.1",
        "inf",
        "0.1,inf",
        "nan",
        "0.1,nan",
        "0.1,0.1,0.1",
        "1e400",
        "1e-4:1:0",
        "1:1e-4:3",
        "0:1:3",
        "1e-4:inf:3",
        "1e-4:1:10001",
        "1e-4:1:2000",
        "1e-4:1:2.5",
        "1e-4:1",
        "1:2:3:4",
        "a,b",
        "",
        ",",
    ],
    "--optimizer": ["sgd", "momentum", "nesterov", "adam", "sgd,adam", "adam,adam", "lm", "lbfgs", "adamw", "gd", ""],
    "--seeds": ["0", "1", "3", "-1", "1.5", str(BIG), str(10**9)],
    "--best": ["0", "1", "3", "1000", "-1", str(BIG)],
}
SWEEP_FLAGS = ["--init-random", "--force", *READ_FLAGS]
#: Options that make a sweep slow even when it runs as asked: the default run leaves them out.
SWEEP_SLOW = {"--compiled"}

GROUP_OPTIONS: dict[str, list | object] = {
    **COMMON,
    "--optimizer": ["auto", "lm", "sgd", "momentum", "nesterov", "adam", "lbfgs", "adamw", "gd", ""],
    "--lr": NUMBERS,
    "--seed": ["-1", "0", "7", str(2**64 - 1), str(2**64)],
    "--device": ["auto", "cpu", "CPU", "cuda:99", "cpu:abc", "tpu", ""],
    "--bound": _bounds,
    "--option": ["foo=1", "degree=2", "hidden=3", "=", "noequals"],
    "--sigma": ["s", "x", "zz", "y", "zero_w", "neg_w"],
    "--weights": ["s", "x", "zz", "y", "zero_w", "neg_w"],
    "--group": ["zz", "", "x"],
    "--memory-budget": ["50%", "1KB", "8GB", "abc", "0", "200%"],
    # refused with --group (a grouped fit has no mini-batches, schedules, checkpoints or pictures)
    "--epochs": ["1", "3", "-2"],
    "--batch-size": ["7", "0"],
    "--schedule": ["cosine", "zz"],
    "--val-split": ["0.2", "2"],
    "--patience": ["5", "-3"],
    "--max-time": ["1", "-1"],
    "--log-every": ["1", "-1"],
    "--checkpoint-every": ["5", "-1"],
    "--landscape": ["a,b", "zz"],
    "--resume": ["{tmp}/no-such-run", "{tmp}"],
    "--animate": ["{tmp}/a.gif", "{tmp}/a.txt"],
}
GROUP_FLAGS = ["--drop-nan", "--absolute-sigma", "--parquet", "--force", "--scale", "--uncertainty", "--plot"]
GROUP_FLAGS += READ_FLAGS

EXTRA_NAMES = {
    "--x": ["input", "column"],
    "--sigma": ["sigma", "column"],
    "--weights": ["weight", "column"],
    "--init": ["initial", "start"],
    "--init-random": ["init", "random"],
    "--fix": ["fix"],
    "--bound": ["bound", "limit"],
    "--param": ["param"],
    "--option": ["option"],
    "--resume": ["checkpoint", "resume"],
    "--animate": ["animat"],
    "--device": ["device"],
    "--dtype": ["dtype", "float"],
    "--loss": ["loss"],
    "--epochs": ["epoch"],
    "--steps": ["step"],
    "--lr": ["learning rate", "lr"],
    "--seeds": ["seed"],
    "--best": ["best", "race"],
    "--group": ["group"],
    "--memory-budget": ["memory"],
    "--drop-nan": ["nan", "row"],
    "--absolute-sigma": ["sigma"],
    "--uncertainty": ["uncertaint"],
    "--sep": ["separat"],
    "--decimal": ["decimal"],
    "--thousands": ["thousands"],
    "--encoding": ["encoding"],
    "--no-header": ["header", "c1"],  # the columns are named c1, c2...
    "--dates": ["date"],
    "--date-unit": ["unit", "date"],
    "--date-origin": ["origin", "date"],
    "--date-format": ["format", "date"],
    "--dayfirst": ["date", "day"],
    "--monthfirst": ["date", "month"],
}


def _names(flag: str) -> list[str]:
    bare = flag[2:]
    return [flag, bare, bare.replace("-", "_"), *EXTRA_NAMES.get(flag, [])]


def _values(table: dict, flag: str, case: Case) -> list[str]:
    values = table[flag]
    return values(case) if callable(values) else values  # type: ignore[operator, return-value]


def _run(command: str, case: Case, options: list[tuple[str, str | None]]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="corpus-batched-"))
    try:
        out = tmp / "out"
        args = [command, case.data, "--y", case.y, "--model", case.model]
        for flag, value in options:
            args += [flag] if value is None else [flag, value.format(tmp=tmp)]
        given = {flag for flag, _ in options}
        if command == "fit" and "--group" not in given:
            args += ["--group", case.group]
            given.add("--group")
        if case.x and "--x" not in given:
            args += ["--x", case.x]
        if "--steps" not in given:  # a small budget whatever was drawn
            args += ["--steps", "50"]
        res, shown = invoke_checked(args, out=out, tmp=tmp, given=given, names=_names, refused=case.refused)
        if res.exit_code != 2:
            if command == "sweep":
                _check_sweep(out, dict(options), shown, res.exit_code)
            else:
                _check_groups(out, case, args, shown, res.exit_code)
        return res.exit_code
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_sweep(out: Path, options: dict, shown: str, code: int) -> None:
    """sweep.csv: one row per member (lr x optimizer x seed), members numbered 0..K-1; exit 0 iff one descended."""
    table = pd.read_csv(out / "sweep.csv", keep_default_na=False, na_values=[""])
    lrs = parse_lrs(options["--lr"])
    optimizers = [o for o in (options.get("--optimizer") or "sgd").split(",") if o.strip()]
    seeds = int(options.get("--seeds") or 1)
    assert len(table) == len(lrs) * len(optimizers) * seeds, (shown, table)
    assert list(table["member"]) == list(range(len(table))), shown
    rows = [{"stop_reason": r.stop_reason, "loss": float(r.loss)} for r in table.itertuples()]
    assert code == (0 if any(map(descended, rows)) else 1), (shown, table)
    ran = table[table["stop_reason"].isin(["converged", "target_loss", "max_steps"])]
    assert np.isfinite(ran["loss"].astype(float)).all(), (shown, table)
    history = pd.read_csv(out / "history.csv")
    assert set(history["member"]) <= set(table["member"]), shown


def _check_groups(out: Path, case: Case, args: list[str], shown: str, code: int) -> None:
    """groups.csv: one row per group, keys unique; result.json strict JSON, its counts those of the table; exit 0
    iff a group converged."""
    column = args[args.index("--group") + 1]
    table = pd.read_csv(out / "groups.csv", keep_default_na=False, na_values=[""])
    summary = strict_json((out / "result.json").read_text())
    keys = read_table(case.data)[column]
    assert table[column].is_unique, (shown, table)
    if "--drop-nan" in args:
        assert 1 <= len(table) <= keys.nunique(), (shown, table)
    else:
        assert len(table) == keys.nunique(), (shown, table)
    assert sum(summary["counts"].values()) == len(table), (shown, summary)
    assert code == (0 if (table["status"] == "converged").any() else 1), (shown, table)
    assert set(table["status"]) <= set(STATUS) - {"running"}, (shown, table)
    converged = table[table["status"] == "converged"]
    assert np.isfinite(converged["loss"].astype(float)).all() and (converged["n_rows"] >= 1).all(), (shown, table)
    assert (out / "groups.parquet").is_file() == ("--parquet" in args), shown


@st.composite
def _combinations(draw, command: str, most: int, slow: bool):
    sweeping = command == "sweep"
    cases, table, flags_ = (SWEEPS, SWEEP_OPTIONS, SWEEP_FLAGS) if sweeping else (GROUPED, GROUP_OPTIONS, GROUP_FLAGS)
    case = draw(st.sampled_from(cases))
    names = sorted(f for f in table if f != "--lr" or command == "fit")
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=most, unique=True))
    options = [(f, draw(st.sampled_from(_values(table, f, case)))) for f in chosen]
    if command == "sweep":
        options.insert(0, ("--lr", draw(st.sampled_from(_values(table, "--lr", case)))))
        flags_ = flags_ + (sorted(SWEEP_SLOW) if slow else [])
        if not any(f == "--best" for f, _ in options):
            options.append(("--best", draw(st.sampled_from(["0", "0", "1", "2"]))))  # races are slow: fewer
    options += [(f, None) for f in draw(st.lists(st.sampled_from(flags_), max_size=2, unique=True))]
    return command, case, options


@settings(max_examples=40, **SETTINGS)
@given(_combinations("sweep", most=3, slow=False))
def test_random_sweeps_end_in_an_allowed_way(case):
    _run(*case)


@settings(max_examples=40, **SETTINGS)
@given(_combinations("fit", most=3, slow=False))
def test_random_grouped_fits_end_in_an_allowed_way(case):
    _run(*case)


@pytest.mark.slow
@settings(max_examples=400, **SETTINGS)
@given(_combinations("sweep", most=5, slow=True))
def test_many_random_sweeps_end_in_an_allowed_way(case):
    _run(*case)


@pytest.mark.slow
@settings(max_examples=500, **SETTINGS)
@given(_combinations("fit", most=5, slow=True))
def test_many_random_grouped_fits_end_in_an_allowed_way(case):
    _run(*case)


_SWEEP_ALONE = [
    (c, f, v)
    for c in (SWEEPS[0], SWEEPS[1], SWEEPS[4], SWEEPS[8])
    for f in [*SWEEP_OPTIONS, *SWEEP_FLAGS, *SWEEP_SLOW]
    for v in (_values(SWEEP_OPTIONS, f, c) if f in SWEEP_OPTIONS else [None])
]
_GROUP_ALONE = [
    (c, f, v)
    for c in (GROUPED[0], GROUPED[2], GROUPED[4])
    for f in [*GROUP_OPTIONS, *GROUP_FLAGS]
    for v in (_values(GROUP_OPTIONS, f, c) if f in GROUP_OPTIONS else [None])
]


@pytest.mark.slow
@pytest.mark.parametrize("case,flag,value", _SWEEP_ALONE, ids=[f"{c.model}:{f}={v}" for c, f, v in _SWEEP_ALONE])
def test_every_sweep_option_value_alone_ends_in_an_allowed_way(case, flag, value):
    options = [(flag, value)] + ([] if flag == "--lr" else [("--lr", "0.01,0.1")])
    _run("sweep", case, options)


@pytest.mark.slow
@pytest.mark.parametrize("case,flag,value", _GROUP_ALONE, ids=[f"{c.model}:{f}={v}" for c, f, v in _GROUP_ALONE])
def test_every_grouped_option_value_alone_ends_in_an_allowed_way(case, flag, value):
    _run("fit", case, [(flag, value)])


@pytest.mark.parametrize("case", SWEEPS, ids=[c.data.rsplit("/", 1)[-1] + ":" + c.model for c in SWEEPS])
def test_every_sweep_dataset_ends_in_an_allowed_way(case):
    """A member that diverges beside one that does not, and the race of the best: the landscape drawn on each."""
    _run("sweep", case, [("--lr", "0.1,1e10"), ("--best", "1")])


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "bce", "cross_entropy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_loss_of_a_classification_sweep_ends_in_an_allowed_way(loss, dtype):
    """Separable blobs: a loss of 0 over much of the landscape (race.png once failed to draw it)."""
    _run("sweep", SWEEPS[4], [("--lr", "0.1,1e10"), ("--loss", loss), ("--dtype", dtype), ("--best", "2")])


@pytest.mark.parametrize("case", GROUPED, ids=[c.data.rsplit("/", 1)[-1] + ":" + c.model for c in GROUPED])
def test_every_grouped_dataset_ends_in_an_allowed_way(case):
    _run("fit", case, [])


@pytest.mark.parametrize(
    "flag,value",
    [("--lr", "0"), ("--lr", "0.1,nan"), ("--lr", "1e-4:1:10001"), ("--seeds", "0"), ("--optimizer", "lm")],
)
def test_a_sweep_value_beyond_its_range_is_refused_naming_the_option(flag, value):
    options = [(flag, value)] + ([] if flag == "--lr" else [("--lr", "0.1")])
    assert _run("sweep", SWEEPS[0], options) == 2


@pytest.mark.parametrize(
    "flag,value",
    [("--loss", "mae"), ("--dtype", "float32"), ("--epochs", "3"), ("--group", "zz"), ("--lr", "nan")],
)
def test_a_grouped_value_beyond_its_range_is_refused_naming_the_option(flag, value):
    assert _run("fit", GROUPED[0], [(flag, value)]) == 2


def test_a_sweep_and_a_grouped_fit_inside_their_ranges_run():
    assert _run("sweep", SWEEPS[0], [("--lr", "1e-3:0.1:3"), ("--optimizer", "sgd,adam"), ("--seeds", "2")]) == 0
    assert _run("fit", GROUPED[0], [("--init", "a=1,b=1,c=0"), ("--parquet", None)]) == 0

"""A generated corpus over the CLI's option space (issue 9, item 10).

Every documented option of ``gradfit fit`` is tried inside, at and beyond its range, alone and in random
combinations, on small data with a small budget. Whatever the options, the command must end in one of
the three documented ways:

* exit 0 or 1 with a complete run: ``result.json`` strict JSON (no NaN or Infinity tokens), no
  temporary files;
* exit 2 with a one-paragraph message that names one of the options given, and nothing written;

and never an "internal error" or a traceback. The CLI runs in-process (typer's runner) for speed.

The default run tries a few dozen combinations; the full corpus (every value of every option alone, and
hundreds of combinations) is marked ``slow``: ``pytest -m slow tests/test_cli_corpus.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.cli_corpus import BIG, NUMBERS, SETTINGS, invoke_checked, strict_json


@dataclass(frozen=True)
class Model:
    """A model with the data it fits and its parameters' names (for --init, --fix, --bound, --landscape)."""

    data: str
    y: str
    model: str
    params: tuple[str, ...]
    refused: str = ""  # for data refused whatever the options: the message's fragment that says why


MODELS = [
    Model("builtin:linear?n=50", "y", "linear", ("a[0]", "a[1]")),
    Model("builtin:linear?n=40&seed=3", "y", "a*x + b", ("a", "b")),
    Model("builtin:linear?n=30", "y", "poly2", ("c0", "c1", "c2")),
    Model("builtin:linear?n=60", "y", "a*exp(k*x/10) + c", ("a", "k", "c")),
    Model("builtin:blobs?n=40", "label", "logistic", ("w[0]", "w[1]", "b")),
    Model("builtin:linear?n=3", "y", "poly2", ("c0", "c1", "c2")),  # as many rows as parameters
    Model("builtin:linear?n=1", "y", "a*x + b", ("a", "b"), "1 row, but at least 2 are needed"),
]

#: Each option: its flag and the values tried, inside, at and beyond its range, and nonsense.
#: A value may be a list (several arguments) or depend on the model (a callable of the model).
OPTIONS: dict[str, list] = {
    "--loss": ["mse", "mae", "huber", "cross_entropy", "bce", "msee", ""],
    "--optimizer": [
        "auto",
        "sgd",
        "momentum",
        "nesterov",
        "adam",
        "adamw",
        "rmsprop",
        "adagrad",
        "lbfgs",
        "lm",
        "l-bfgs",
        "gd",
        "newton",
        "",
    ],
    "--lr": NUMBERS,
    "--momentum": ["0", "0.5", "0.9", "0.999", "1", "-0.1", "2", "nan"],
    "--steps": ["-1", "0", "1", "5", "20", str(BIG - 1), str(BIG), "1.5"],
    "--epochs": ["0", "1", "3", str(BIG - 1), str(BIG), "-2"],
    "--batch-size": ["0", "1", "7", "30", "50", "51", str(BIG), "-1"],
    "--schedule": ["constant", "step", "exponential", "cosine", "onecycle", "linear", ""],
    "--val-split": ["0", "1e-9", "0.2", "0.5", "0.9", "0.98", "0.99", "1", "-0.1", "nan", "inf"],
    "--patience": ["0", "1", "5", str(BIG), "-3"],
    "--target-loss": ["-inf", "-1", "0", "0.1", "1e300", "nan"],
    "--max-time": ["0", "-1", "0.5", "1e-9", "inf", "nan"],
    "--tol": ["0", "-1", "1e-12", "1e-6", "1", "10", "nan", "inf"],
    "--seed": ["-1", "0", "7", str(2**63), str(2**64 - 1), str(2**64), str(10**30)],
    "--log-every": ["0", "1", "7", str(BIG), "-1"],
    "--dtype": ["float32", "float64", "float16", "double", ""],
    "--device": ["auto", "cpu", "CPU", "cuda:99", "cpu:abc", "mps", "tpu", ""],
    "--checkpoint-every": ["0", "1", "5", str(BIG), "-1"],
    "--x": ["x", "zz", "x,x", ""],
    "--sigma": ["x", "zz", "y"],
    "--weights": ["x", "zz", "y"],
    "--option": ["foo=1", "degree=2", "hidden=3", "hidden=-1", "=", "noequals"],
    "--resume": ["{tmp}/no-such-run", "{tmp}"],
    "--animate": ["{tmp}/a.txt", "/proc/x.gif", "{tmp}", "{tmp}/no/such/folder/a.gif"],
    "--init": lambda m: (
        [f"{p}={v}" for p in (*m.params, "zz") for v in ("0", "1", "1e39", "-1e300", "nan", "inf")]
        + ["=1", "noequals", f"{m.params[0]}=1,{m.params[0]}=2"]
    ),
    "--fix": lambda m: [*m.params, "zz", ",".join(m.params), ""],
    "--bound": lambda m: [
        f"{p}={lo}:{hi}"
        for p in (m.params[0], "zz")
        for lo, hi in (("0", ""), ("", "0"), ("-1", "1"), ("5", "1"), ("nan", "1"), ("1", "1"))
    ],
    "--landscape": lambda m: [",".join(m.params[:2]), m.params[0], f"{m.params[0]},{m.params[0]}", "zz,yy"],
}
FLAGS = ["--scale", "--uncertainty", "--no-uncertainty", "--drop-nan", "--absolute-sigma", "--force"]
#: Options that draw pictures: only their refusals are cheap, so the fast corpus leaves them out.
PICTURES = {"--landscape", "--animate"}


def _values(flag: str, model: Model) -> list[str]:
    values = OPTIONS[flag]
    return values(model) if callable(values) else values


def _names(flag: str) -> list[str]:
    """The spellings of an option a message may use: ``--val-split``, ``val_split``, ``val-split``..."""
    bare = flag[2:]
    names = [flag, bare, bare.replace("-", "_")]
    extra = {
        "--option": ["option"],
        "--x": ["input", "column"],
        "--sigma": ["sigma", "column"],
        "--weights": ["weight", "column"],
        "--init": ["initial", "start"],
        "--fix": ["fix"],
        "--bound": ["bound", "limit"],
        "--resume": ["checkpoint", "resume"],
        "--animate": ["animation"],
        "--device": ["device"],
        "--dtype": ["dtype", "float"],
        "--loss": ["loss"],
        "--epochs": ["epoch"],
        "--steps": ["step"],
        "--landscape": ["landscape"],
        "--scale": ["scale"],
        "--uncertainty": ["uncertaint"],
        "--absolute-sigma": ["sigma"],
        "--drop-nan": ["nan", "row"],
    }
    return names + extra.get(flag, [])


def check_run(model: Model, options: list[tuple[str, str | None]]) -> int:
    """Run ``gradfit fit`` with ``options`` (flag, value or None) and assert the outcome is one of the three allowed."""
    tmp = Path(tempfile.mkdtemp(prefix="corpus-"))
    try:
        out = tmp / "out"
        args = ["fit", model.data, "--y", model.y, "--model", model.model]
        for flag, value in options:
            args += [flag] if value is None else [flag, value.format(tmp=tmp)]
        given = {flag for flag, _ in options}
        # a small budget whatever was drawn: a huge --steps or --epochs runs at most a second
        if not given & {"--steps", "--epochs"}:
            args += ["--steps", "20"]
        if "--max-time" not in given:
            args += ["--max-time", "1"]
        res, shown = invoke_checked(args, out=out, tmp=tmp, given=given, names=_names, refused=model.refused)
        if res.exit_code != 2:
            assert (out / "result.json").is_file(), shown
            strict_json((out / "result.json").read_text())
        return res.exit_code
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@st.composite
def combinations(draw, pictures: bool, most: int):
    model = draw(st.sampled_from(MODELS))
    flags_ = FLAGS + (["--plot"] if pictures else [])
    flags = sorted(f for f in OPTIONS if pictures or f not in PICTURES)
    chosen = draw(st.lists(st.sampled_from(flags), min_size=1, max_size=most, unique=True))
    options = [(f, draw(st.sampled_from(_values(f, model)))) for f in chosen]
    options += [(f, None) for f in draw(st.lists(st.sampled_from(flags_), max_size=2, unique=True))]
    return model, options


@settings(max_examples=30, **SETTINGS)
@given(combinations(pictures=False, most=3))
def test_random_combinations_end_in_an_allowed_way(case):
    check_run(*case)


@pytest.mark.slow
@settings(max_examples=800, **SETTINGS)
@given(combinations(pictures=True, most=5))
def test_many_random_combinations_end_in_an_allowed_way(case):
    check_run(*case)


_SINGLE = [(m, f, v) for m in MODELS[:2] for f in OPTIONS for v in _values(f, m)]


@pytest.mark.slow
@pytest.mark.parametrize("model,flag,value", _SINGLE, ids=[f"{m.model}:{f}={v}" for m, f, v in _SINGLE])
def test_every_value_of_every_option_alone_ends_in_an_allowed_way(model, flag, value):
    check_run(model, [(flag, value)])


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--steps", str(BIG)),
        ("--seed", str(2**64)),
        ("--val-split", "1"),
        ("--lr", "nan"),
        ("--device", "cpu:abc"),
        ("--dtype", "float16"),
        ("--batch-size", "0"),
        ("--momentum", "1"),
    ],
)
def test_a_value_beyond_its_range_is_refused_naming_the_option(flag, value):
    assert check_run(MODELS[0], [(flag, value)]) == 2


def test_values_inside_their_ranges_run():
    assert (
        check_run(
            MODELS[1],
            [
                ("--optimizer", "lm"),
                ("--seed", str(2**64 - 1)),
                ("--tol", "1e-12"),
                ("--val-split", "0.2"),
                ("--checkpoint-every", "5"),
            ],
        )
        == 0
    )

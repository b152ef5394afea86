"""``gradfit grad``: seed 002's autograd examples in one line, and its bad input."""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from gradfit.cli.app import app
from gradfit.cli.grad_cmd import format_number

runner = CliRunner()


def grad(*args):
    return runner.invoke(app, ["grad", *args])


def test_scalar_example_of_seed_002():
    res = grad("x**2", "--at", "3")
    assert res.exit_code == 0, res.output
    assert res.stdout == "value: 9\ngradient: 6\n"


def test_vector_example_of_seed_002():
    res = grad("sum(x**2)", "--at", "3,4,10")
    assert res.exit_code == 0, res.output
    assert res.stdout == "value: 125\ngradient: [6, 8, 20]\n"


def test_several_names_one_line_each_matching_hand_autograd():
    res = grad("x*sum(y**2) + exp(x)", "--at", "x=0.5", "--at", "y=1,-2")
    assert res.exit_code == 0, res.output
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    out = x * torch.sum(y**2) + torch.exp(x)
    out.backward()
    lines = res.stdout.splitlines()
    assert lines[0] == f"value: {out.item():g}"
    assert lines[1:] == [f"d/dx: {x.grad.item():g}", f"d/dy: [{y.grad[0].item():g}, {y.grad[1].item():g}]"]
    assert lines[2] == "d/dy: [1, -2]"


def test_negative_value_and_named_single_value():
    assert grad("x**3", "--at", "-2").stdout == "value: -8\ngradient: 12\n"
    assert grad("x**3", "--at", "x=[1, 2]").exit_code == 2  # a vector: x**3 is not a single number
    assert grad("sum(x**3)", "--at", "x=[1, 2]").stdout == "value: 9\ngradient: [3, 12]\n"


def test_formula_without_names():
    res = grad("2**3")
    assert res.exit_code == 0 and res.stdout.startswith("value: 8\ngradient: none")


@pytest.mark.parametrize(
    "args, match",
    [
        (["x**2", "--at", "3,4,10"], r"gives 3 values .*backward\(\) starts from a scalar.*sum\(x\*\*2\)"),
        (["x**", "--at", "3"], "not a valid expression"),
        (["foo(x)", "--at", "3"], "unknown function 'foo'"),
        (["x*y", "--at", "x=3"], r"No value for 'y' .*--at y=VALUES"),
        (["x**2"], r"No value for 'x' .*--at VALUES"),
        (["x*y", "--at", "3"], r"has 2 names \(x, y\), so name the one each value is for: --at x=VALUES --at y=VALUES"),
        (["x**2", "--at", "z=3"], "--at z=3: the formula 'x\\*\\*2' has no name 'z'; its names are: x"),
        (["x**2", "--at", "abc"], "--at abc: 'abc' is not a number"),
        (["x**2", "--at", "x=1,,2"], "a value is missing"),
        (["x**2", "--at", "x=1", "--at", "x=2"], "gives 'x' twice"),
        (["2", "--at", "3"], "has no names, so it takes no --at"),
    ],
)
def test_bad_input_exits_2_with_one_message(args, match):
    res = grad(*args)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("Error: ")
    assert re.search(match, res.stderr.replace("\n", " ")), res.stderr
    assert "Traceback" not in res.output and res.stdout == ""


def test_format_number_drops_float_noise():
    assert [format_number(v) for v in (9.0, -0.0, 0.1 + 0.2, 1e-12, 125.0)] == ["9", "0", "0.3", "1e-12", "125"]
    assert format_number([[6.0, 8.0], [20.0, -1.5]]) == "[[6, 8], [20, -1.5]]"


def test_help_lists_the_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "grad" in res.stdout and "steps" in res.stdout

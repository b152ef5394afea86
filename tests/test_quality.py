"""The project's habits: the linter and the type checker pass, and ``make test`` runs them.

Both tools come with the ``test`` extra; the checks that run them are skipped only where a tool
is not installed. Their settings (rules, per-file TODO ignores, the mypy baseline) live in
pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_tool(module: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]' installs it)")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing_in_src_and_tests():
    done = run_tool("ruff", "check", "--no-cache", "src", "tests")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_src():
    done = run_tool("mypy", "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout


def test_make_test_runs_the_linter_and_the_type_checker_before_the_tests():
    makefile = (ROOT / "Makefile").read_text()
    test_rule = re.search(r"^test: (.*)$", makefile, re.MULTILINE)
    assert test_rule is not None and "lint" in test_rule.group(1).split()
    lint_recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert lint_recipe is not None
    assert "ruff check src tests" in lint_recipe.group(1) and "mypy src" in lint_recipe.group(1)


def test_the_test_extra_installs_both_tools_with_a_lower_bound():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pins = {re.split(r"[<>=!~ ]", spec, maxsplit=1)[0]: spec for spec in extra}
    for tool in ("ruff", "mypy"):
        assert tool in pins and ">=" in pins[tool], extra

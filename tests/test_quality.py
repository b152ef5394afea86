"""The project's habits: the linter, the import layers and the type checker pass, and ``make test`` runs them.

The tools come with the ``test`` extra; the checks that run them are skipped only where a tool
is not installed. Their settings (rules, per-file TODO ignores, the layers contract, mypy's
options) live in pyproject.toml.
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
    done = run_tool("ruff", "check", "--no-cache", "src", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_as_ruff_formats_it():
    """``ruff format`` (its settings in pyproject.toml): run it on a file before committing."""
    done = run_tool("ruff", "format", "--check", "--no-cache", "src", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_import_layers_are_kept():
    """import-linter's contracts in pyproject.toml: each layer imports only from the layers below it."""
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]' installs it)")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
            "--no-cache",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Contracts: [1-9]\d* kept, 0 broken", done.stdout), done.stdout


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
    for command in ("ruff check src tests bench", "ruff format --check src tests bench", "lint-imports", "mypy src"):
        assert command in lint_recipe.group(1), command


def test_the_test_extra_installs_the_tools_with_a_lower_bound():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pins = {re.split(r"[<>=!~ ]", spec, maxsplit=1)[0]: spec for spec in extra}
    for tool in ("ruff", "mypy", "import-linter"):
        assert tool in pins and ">=" in pins[tool], extra

"""The public surface: what ``gradfit``, ``gradfit.plots`` and ``gradfit.analysis`` export.

Each package lists its names twice (imports that type checkers read, under ``TYPE_CHECKING``, and
the map its lazy ``__getattr__`` loads from); these tests read the first list from the source with
``ast``, the way a type checker does, and hold it to the second.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gradfit
import gradfit.analysis
import gradfit.experiments
import gradfit.plots

PACKAGES = [gradfit, gradfit.plots, gradfit.analysis, gradfit.experiments]


def static_imports(package) -> dict[str, str]:
    """Name -> module of every ``from M import X as name`` under ``if TYPE_CHECKING:``."""
    tree = ast.parse(inspect.getsource(package))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.dump(stmt)
                for alias in stmt.names:
                    # `X as X` is the explicit re-export PEP 484 asks for; a module may take another name
                    found[alias.asname or alias.name] = f"{stmt.module}.{alias.name}"
    return found


def static_all(package) -> list[str]:
    """``__all__`` as written in the source: a literal list, or type checkers cannot read it."""
    tree = ast.parse(inspect.getsource(package))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{package.__name__} has no literal __all__")


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_type_checkers_see_every_exported_name_from_the_module_it_loads_from(package):
    seen = static_imports(package)
    lazy = {name: f"{module}.{name}" for name, module in package._EXPORTS.items()}
    lazy.update(getattr(package, "_MODULES", {}))
    assert seen == lazy
    assert sorted(static_all(package)) == sorted(package.__all__)
    assert set(package.__all__) - {"__version__"} == set(lazy)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_exported_name_resolves_to_the_object_its_module_defines(package):
    for name in package.__all__:
        if name == "__version__":
            continue
        value = getattr(package, name)
        module = getattr(package, "_MODULES", {}).get(name)
        if module is not None:
            assert value is importlib.import_module(module)
        else:
            assert value is getattr(importlib.import_module(package._EXPORTS[name]), name)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        package.not_a_name  # noqa: B018 (the lookup is the test)


def test_the_warning_a_failed_fit_gives_is_exported_and_is_a_user_warning():
    from gradfit.errors import GradfitWarning

    assert gradfit.GradfitWarning is GradfitWarning
    assert issubclass(gradfit.GradfitWarning, UserWarning)


def test_importing_gradfit_and_its_cli_does_not_import_torch_or_matplotlib():
    """The CLI's start-up (``gradfit --help``) must not pay for torch or matplotlib."""
    code = (
        "import sys, gradfit, gradfit.plots, gradfit.analysis, gradfit.cli.app; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_version_is_the_packages_version():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == gradfit.__version__


def test_a_type_checker_sees_the_exports_and_refuses_a_misspelt_name(tmp_path):
    """mypy, reading the packages as a user's code would: real types for the names, an error for a typo."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]' installs it)")

    user = tmp_path / "user.py"
    user.write_text(
        "import gradfit\n"
        "from gradfit.analysis import fit_report\n"
        "from gradfit.plots import FitDisplay\n"
        "reveal_type(gradfit.fit)\n"
        "reveal_type(gradfit.GradfitWarning)\n"
        "reveal_type(FitDisplay)\n"
        "reveal_type(fit_report)\n"
        "gradfit.fitt\n"
    )
    src = Path(gradfit.__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--ignore-missing-imports",
            f"--cache-dir={Path(__file__).resolve().parents[1] / '.mypy_cache' / 'user-view'}",
            str(user),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(src)},
        cwd=tmp_path,
    )
    out = done.stdout
    assert "-> gradfit.train.result.FitResult" in out  # fit's real signature, not Any
    assert "gradfit.errors.GradfitWarning" in out
    assert "gradfit.plots.fit.FitDisplay" in out
    assert "def (result: Any, uncertainty: gradfit.analysis.uncertainty.Uncertainty" in out  # fit_report
    assert 'user.py:8: error: Module has no attribute "fitt"' in out, out
    assert out.count("error:") == 1, out

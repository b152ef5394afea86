"""The root of the ``gradfit`` command: --version, and --quiet / --debug before the command name.

``gradfit --quiet fit ...`` must mean ``gradfit fit --quiet ...``: each root flag is checked
against the command's own flag as the oracle, and against a run without it, so the test fails
when the flag is dropped as well as when it does something else.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import gradfit
from gradfit.cli.app import app

runner = CliRunner()

FIT = ["builtin:linear", "--y", "y", "--model", "linear", "--lr", "0.1", "--steps", "20", "--log-every", "5"]


def without_paths(text: str) -> str:
    """Output with the run's folder left out, so two runs in two folders compare equal."""
    return re.sub(r"\S*(run-a|run-b)\S*", "OUT", text)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_packages_version_and_exits_0(flag):
    out = runner.invoke(app, [flag])
    assert out.exit_code == 0, out.output
    assert out.output == f"gradfit {gradfit.__version__}\n"


def test_version_from_the_installed_console_script_entry_point():
    """The real entry point (``python -m gradfit``), not only the typer app."""
    done = subprocess.run([sys.executable, "-m", "gradfit", "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gradfit {gradfit.__version__}"


def test_root_quiet_means_the_commands_quiet(tmp_path):
    loud = runner.invoke(app, ["fit", *FIT, "--out", str(tmp_path / "loud")])
    own = runner.invoke(app, ["fit", *FIT, "--quiet", "--out", str(tmp_path / "run-a")])
    root = runner.invoke(app, ["--quiet", "fit", *FIT, "--out", str(tmp_path / "run-b")])
    short = runner.invoke(app, ["-q", "fit", *FIT, "--out", str(tmp_path / "run-b2")])
    assert own.exit_code == root.exit_code == short.exit_code == loud.exit_code
    assert "step" in loud.output and len(own.output) < len(loud.output)  # --quiet silences something
    assert without_paths(root.output) == without_paths(own.output)
    assert short.output == root.output.replace("run-b", "run-b2")
    assert (tmp_path / "run-b" / "result.json").is_file()  # quiet, not idle


def test_root_debug_means_the_commands_debug():
    bad = ["grad", "sum(x**2", "--at", "3"]
    plain = runner.invoke(app, bad)
    own = runner.invoke(app, [*bad, "--debug"])
    root = runner.invoke(app, ["--debug", *bad])
    assert plain.exit_code == own.exit_code == root.exit_code == 2
    assert "Traceback" not in plain.output
    assert "Traceback" in own.output and "Traceback" in root.output
    assert root.output == own.output


def test_root_flags_reach_every_command_that_has_them():
    """A command that has --quiet or --debug gets it from the root; one without keeps working."""
    from gradfit.cli import app as app_module

    group = typer_group()
    for name, command in group.commands.items():
        params = {p.name for p in command.params if p.param_type_name == "option"}
        assert ("quiet" in params) == (name in app_module._QUIET_COMMANDS), name
        assert ("debug" in params) == (name in app_module._DEBUG_COMMANDS), name


def typer_group():
    import typer.main

    return typer.main.get_command(app)


def test_root_quiet_on_a_command_without_quiet_changes_nothing():
    plain = runner.invoke(app, ["grad", "sum(x**2)", "--at", "3,4"])
    root = runner.invoke(app, ["--quiet", "grad", "sum(x**2)", "--at", "3,4"])
    assert plain.exit_code == root.exit_code == 0
    assert root.output == plain.output and "25" in plain.output

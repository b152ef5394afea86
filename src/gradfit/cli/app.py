"""The ``gradfit`` command: the typer app and its entry point.

Commands live in their own modules (:mod:`gradfit.cli.fit_cmd`, :mod:`gradfit.cli.demo`) and
import torch and the library inside their bodies, so ``gradfit --help`` stays quick.
"""

from __future__ import annotations

import typer

from gradfit.cli.demo import demo_command
from gradfit.cli.fit_cmd import fit_command
from gradfit.cli.grad_cmd import grad_command
from gradfit.cli.lr_find_cmd import lr_find_command
from gradfit.cli.models_cmd import models_command
from gradfit.cli.plot_cmd import plot_command
from gradfit.cli.race_cmd import race_command
from gradfit.cli.steps_cmd import steps_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="gradfit",
    help="Fit any differentiable model to data by gradient descent, and watch it learn.",
    no_args_is_help=True,
    add_completion=False,
    # Errors are reported by gradfit.cli.console.guarded; a traceback only with --debug.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("fit", no_args_is_help=True)(fit_command)
app.command("demo", no_args_is_help=True)(demo_command)
app.command("grad", no_args_is_help=True)(grad_command)
app.command("steps", no_args_is_help=True)(steps_command)
app.command("plot", no_args_is_help=True)(plot_command)
app.command("race", no_args_is_help=True)(race_command)
app.command("lr-find", no_args_is_help=True)(lr_find_command)
app.command("models")(models_command)


@app.callback()
def _root() -> None:
    """Fit any differentiable model to data by gradient descent, and watch it learn.

    Exit status: 0 success, 1 the fit failed or diverged, 2 bad input or options.
    """


def main() -> None:
    """Console-script entry point (``gradfit = "gradfit.cli.app:main"``)."""
    app(prog_name="gradfit")


if __name__ == "__main__":  # pragma: no cover
    main()

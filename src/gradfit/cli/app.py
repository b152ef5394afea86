"""The ``gradfit`` command: the typer app and its entry point.

Commands live in their own modules (:mod:`gradfit.cli.fit_cmd`, :mod:`gradfit.cli.demo`) and
import torch and the library inside their bodies, so ``gradfit --help`` stays quick.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from gradfit.cli.console import EXIT_INTERRUPTED
from gradfit.cli.demo import demo_command
from gradfit.cli.fit_cmd import fit_command
from gradfit.cli.grad_cmd import grad_command
from gradfit.cli.lr_find_cmd import lr_find_command
from gradfit.cli.models_cmd import models_command
from gradfit.cli.plot_cmd import plot_command
from gradfit.cli.predict_cmd import predict_command
from gradfit.cli.race_cmd import race_command
from gradfit.cli.serve_cmd import serve_command
from gradfit.cli.steps_cmd import steps_command
from gradfit.cli.sweep_cmd import sweep_command

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
app.command("sweep", no_args_is_help=True)(sweep_command)
app.command("predict", no_args_is_help=True)(predict_command)
app.command("models")(models_command)
app.command("serve")(serve_command)


# The subcommands whose own --quiet / --debug the root's flags switch on (those that have them).
_QUIET_COMMANDS = ("fit", "demo", "plot", "race", "lr-find", "sweep", "predict")
_DEBUG_COMMANDS = (*_QUIET_COMMANDS, "grad", "steps", "models", "serve")
_QUIET_HELP = "Print nothing but errors (the command's own --quiet, for the commands that have one)."
_DEBUG_HELP = "Show the traceback of an error (the command's own --debug)."


def _print_version(value: bool) -> None:
    if value:
        from gradfit import __version__

        typer.echo(f"gradfit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=_QUIET_HELP)] = False,
    debug: Annotated[bool, typer.Option("--debug", help=_DEBUG_HELP)] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_print_version, is_eager=True, help="Print gradfit's version and exit."
        ),
    ] = False,
) -> None:
    """Fit any differentiable model to data by gradient descent, and watch it learn.

    Exit status: 0 success, 1 the fit failed or diverged, 2 bad input or options.
    """
    # ``gradfit --quiet fit ...`` means ``gradfit fit --quiet ...``: the root's flags become the
    # defaults of the command's own options (click's default_map, read when the command's context
    # is made, after this callback), so each command keeps one ``quiet`` and one ``debug``.
    defaults: dict[str, dict[str, bool]] = {}
    for names, flag, on in ((_QUIET_COMMANDS, "quiet", quiet), (_DEBUG_COMMANDS, "debug", debug)):
        if on:
            for name in names:
                defaults.setdefault(name, {})[flag] = True
    if defaults:
        ctx.default_map = {**(ctx.default_map or {}), **defaults}


def main() -> None:
    """Console-script entry point (``gradfit = "gradfit.cli.app:main"``)."""
    _default_sigint()
    try:
        app(prog_name="gradfit")
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:
            _leave_now(EXIT_INTERRUPTED)
        raise
    finally:
        _quiet_after_the_command()


def _leave_now(code: int) -> None:
    """End an interrupted command at once: its files are whole and closed, its messages said.

    Someone who pressed Ctrl-C wants the prompt back; the interpreter's shutdown would take
    another second or two (torch's teardown, freeing the fit's memory) and run nothing the
    command needs, so the streams are flushed and the process ends here.
    """
    import os

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _quiet_after_the_command() -> None:
    """Let a Ctrl-C or SIGTERM that comes once the command is over end the process without a word.

    The command has written and said all it had to; what is left is the interpreter's shutdown
    (a second or more with torch loaded), during which Python's own handler would print
    "Exception ignored in atexit callback ... KeyboardInterrupt". The default action ends the
    process at once instead, with the signal's exit status.
    """
    import signal

    for name in ("SIGINT", "SIGTERM"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)


def _default_sigint() -> None:
    """Answer Ctrl-C (SIGINT) even when started in the background by a script.

    A shell without job control starts ``cmd &`` with SIGINT ignored, and Python then keeps it
    ignored, so ``kill -INT`` (or Ctrl-C on the script) would not stop the fit and save it. The
    gradfit process is ours, and stopping at a step boundary loses nothing (the run and a
    checkpoint are saved, exit 130), so the ignored SIGINT is turned back into Python's handler.
    Library calls are left alone: :func:`gradfit.fit` keeps an ignored signal ignored. SIGTERM
    is not ignored by the shell and needs nothing.
    """
    import signal

    if hasattr(signal, "SIGINT") and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":  # pragma: no cover
    main()

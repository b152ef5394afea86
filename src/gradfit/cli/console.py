"""The CLI's two consoles and its one way out on error.

Everything the CLI prints goes through ``console`` (stdout) or ``err_console`` (stderr), so
tests and pipes see one stream each. Every failure leaves through :func:`abort`, and every
command body runs inside :func:`guarded`, which turns exceptions into exit codes:

- a :class:`~gradfit.errors.GradfitError` (bad data, model or option): its message, exit
  ``exc.exit_code`` (2 for bad input, 1 for divergence);
- Ctrl-C (or a signal the command turned into :class:`~gradfit.train.interrupt.Interrupted`): exit
  130, saying which files were written whole before it (:mod:`gradfit.cli.interruption`);
- anything else: a one-line "internal error" pointing to ``--debug``, exit 1.

The output folders a command locked (:mod:`gradfit.folder_lock`) are unlocked when it ends.

No traceback is shown unless ``--debug`` is given.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Collection, Iterable, Iterator
from typing import NoReturn

import typer
from rich.console import Console

__all__ = [
    "console",
    "err_console",
    "abort",
    "guarded",
    "print_warnings",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# Rich resolves sys.stdout / sys.stderr at write time, so test runners that swap them still see
# the output. Highlighting is off: numbers in user messages must not change colour at random.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_warnings(caught: Iterable[warnings.WarningMessage], skip: Collection[str] = ()) -> None:
    """Each GradfitWarning recorded by ``warnings.catch_warnings(record=True)`` as one ``Warning: ...`` line on
    stderr, once per text; texts in ``skip`` (a failed fit's verdict, printed as its error) are left out."""
    from gradfit.errors import GradfitWarning

    texts = (str(w.message) for w in caught if issubclass(w.category, GradfitWarning))
    for text in dict.fromkeys(t for t in texts if t not in skip):
        err_console.print(f"Warning: {text}", markup=False, soft_wrap=True, style="yellow")


def abort(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code``.

    The message is printed as plain text (no rich markup: user text such as ``a[0]`` must come
    out as written) and soft-wrapped, so a narrow terminal wraps it but never cuts it.
    """
    err_console.print(f"Error: {message}", markup=False, emoji=False, soft_wrap=True, style="red" if code else None)
    raise typer.Exit(code)


@contextlib.contextmanager
def guarded(debug: bool = False) -> Iterator[None]:
    """Run a command body, turning every exception into a message and an exit code."""
    from gradfit.atomic_files import WriteLog
    from gradfit.errors import GradfitError  # gradfit.errors is light; kept here so --help stays lean
    from gradfit.folder_lock import locks_released

    log = WriteLog()  # what the command writes whole, for the message if it is interrupted
    try:
        # The output folders the command locked are free again when it ends.
        with log, locks_released():
            yield
    except (typer.Exit, typer.Abort):
        raise
    except GradfitError as exc:
        if debug:
            err_console.print_exception()
        abort(str(exc), exc.exit_code)
    except KeyboardInterrupt as exc:
        from gradfit.cli.interruption import cut_short_message

        abort(cut_short_message(exc, log.written), EXIT_INTERRUPTED)
    except Exception as exc:
        if debug:
            err_console.print_exception()
            abort(f"internal error: {type(exc).__name__}: {_first_line(exc)}", EXIT_FAILED)
        abort(
            f"internal error: {type(exc).__name__}: {_first_line(exc)}. This is a bug in gradfit; "
            f"run again with --debug to see the traceback and include it in a bug report.",
            EXIT_FAILED,
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"

"""Signal handlers in place before a command or a fit, so that a signal the code under test misses fails the test."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["Fallback", "fallback_handlers"]


class Fallback(BaseException):
    """Raised by the handlers in place before the code under test: a window that misses a signal fails the test (it
    would otherwise be a KeyboardInterrupt ending pytest, or SIGTERM's default action killing it)."""


@contextlib.contextmanager
def fallback_handlers() -> Iterator[type[Fallback]]:
    """SIGINT and SIGTERM raise :class:`Fallback` inside; the handlers before are put back after."""

    def fallback(signum, frame):
        raise Fallback(signal.Signals(signum).name)

    before = {s: signal.signal(s, fallback) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield Fallback
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)

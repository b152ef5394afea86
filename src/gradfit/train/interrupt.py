"""Stopping a fit cleanly on Ctrl-C (SIGINT) or SIGTERM.

While a loop runs inside :func:`catch_interrupts`, the first SIGINT or SIGTERM does not raise:
it sets a :class:`StopRequest` that the loop reads once per step, at the boundary between two
updates, so the fit ends as ``interrupted`` with the parameters of a whole step and can be
saved and resumed. The handler puts the previous handlers back as soon as it fires, so a
second Ctrl-C behaves as if gradfit were not there (``KeyboardInterrupt``) and can still stop a
fit that is slow to wind down. The previous handlers are always restored when the block ends.

Signal handlers can only be installed from the main thread; elsewhere the block installs
nothing and the request can still be raised with :func:`request_stop`.

Examples
--------
>>> with catch_interrupts() as stop:
...     for step in range(1000):
...         if stop:
...             break
...         if step == 3:
...             _ = request_stop()  # what a signal handler does
>>> step, stop.reason
(4, 'request')
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["StopRequest", "catch_interrupts", "request_stop", "SIGNALS"]

SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)

# The requests of the loops now running, innermost last: request_stop() speaks to the innermost.
_active: list["StopRequest"] = []


class StopRequest:
    """Whether the running fit was asked to stop, and by what.

    Truthy once requested. ``signal`` is the signal number (None for :func:`request_stop`);
    ``reason`` is ``"SIGINT"``, ``"SIGTERM"`` or ``"request"``.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.requested = False

    def __bool__(self) -> bool:
        return self.requested

    @property
    def reason(self) -> str | None:
        if not self.requested:
            return None
        return signal.Signals(self.signal).name if self.signal is not None else "request"

    def set(self, signum: int | None = None) -> None:
        self.signal, self.requested = signum, True


def request_stop() -> bool:
    """Ask the innermost running fit to stop at its next step boundary (as a signal would).

    Returns False when no fit is running.
    """
    if not _active:
        return False
    _active[-1].set(None)
    return True


@contextlib.contextmanager
def catch_interrupts(enabled: bool = True) -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a :class:`StopRequest` for the duration of the block.

    Parameters
    ----------
    enabled : bool
        False installs no handler (signals act as usual); :func:`request_stop` still works.

    Yields
    ------
    StopRequest
    """
    request = StopRequest()
    previous: dict[int, object] = {}
    if enabled and threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current == signal.SIG_IGN:  # ignored by whoever started us (e.g. `cmd &`): keep it so
                continue
            previous[signum] = current

        def handler(signum, frame):
            request.set(signum)
            _restore(previous)  # a second signal acts as it would without gradfit

        for signum in previous:
            signal.signal(signum, handler)
    _active.append(request)
    try:
        yield request
    finally:
        _active.remove(request)
        _restore(previous)


def _restore(previous: dict[int, object]) -> None:
    for signum, old in previous.items():
        # None: a handler installed from C, which Python cannot reinstall; the default is the closest.
        signal.signal(signum, old if old is not None else signal.SIG_DFL)

"""Stopping cleanly on Ctrl-C (SIGINT) or SIGTERM: one window, stages, and what a second signal does.

While code runs inside :func:`catch_interrupts`, the first SIGINT or SIGTERM does not raise by
default: it sets a :class:`StopRequest` that the loop reads once per step, at the boundary
between two updates, so the fit ends as ``interrupted`` with the parameters of a whole step and
can be saved and resumed.

**Stages.** What the code is doing is told with :meth:`StopRequest.stage` (a block) or
:meth:`StopRequest.now` (from here on). In a *kept* stage
(the steps, saving a run) the signal only sets the request and the work goes on to its next
safe point. In a *droppable* stage (reading the data before the fit, the analysis after it,
drawing pictures: work that loses nothing when thrown away) the first signal raises
:class:`Interrupted` at once, and the caller carries on without that work. The request
remembers the stage it arrived in (``during``), so messages can say what was cut short.

**One window.** A window opened while another is open in the main thread joins it: it shares
its request and its handlers. So the CLI holds one window from the first step to the last
file written while :func:`gradfit.fit` opens its own inside it, and a signal anywhere in between
is seen by both.

**The second signal.** With ``second="previous"`` (the default, for a library call) the
handler puts the previous handlers back when it fires, so a second Ctrl-C behaves as if
gradfit were not there (``KeyboardInterrupt``). With ``second="raise"`` (the CLI) the second
SIGINT *or SIGTERM* raises :class:`Interrupted` wherever the program is, so every ``finally``
and every atomic write (:func:`gradfit.atomic_files.atomic_path`) cleans up, where SIGTERM's default
action would kill the process in the middle of a write; only a third signal acts as without
gradfit. The previous handlers are always restored when the window closes.

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
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["StopRequest", "Interrupted", "catch_interrupts", "request_stop", "current_request", "SIGNALS"]

SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)

# What signal.getsignal() returns and signal.signal() takes back (typeshed's private signal._HANDLER).
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

# The requests of the windows now open, innermost last: request_stop() speaks to the innermost.
_active: list[StopRequest] = []


class Interrupted(KeyboardInterrupt):
    """A signal that stops the work under way at once: droppable work, or a second signal.

    A :class:`KeyboardInterrupt`, so ``except Exception`` never swallows it and code that
    already handles Ctrl-C handles it too.

    Attributes
    ----------
    signal : int or None
        The signal number (None for a :func:`request_stop` met on entering a droppable stage).
    during : str or None
        The stage it arrived in ("the analysis after the fit", "saving the run", ...).
    second : bool
        Whether it is the second signal of the window (the first one set the request).
    """

    def __init__(self, signum: int | None, during: str | None = None, second: bool = False):
        self.signal, self.during, self.second = signum, during, second
        super().__init__(f"{signal_name(signum)}{' again' if second else ''}" + (f" during {during}" if during else ""))

    @property
    def name(self) -> str:
        return signal_name(self.signal)


class StopRequest:
    """Whether the running command was asked to stop, by what, and in which stage.

    Truthy once requested. ``signal`` is the signal number (None for :func:`request_stop`);
    ``reason`` is ``"SIGINT"``, ``"SIGTERM"`` or ``"request"``; ``during`` the stage the request
    arrived in; ``signals`` how many signals arrived.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.requested = False
        self.elsewhere: str | None = None  # what asked, when the stop was asked of another process
        self.signals = 0
        self.during: str | None = None
        self.current: str | None = None  # the stage now running
        self.droppable = False
        self.installed = False  # whether this window's handlers are in place (windows opened inside then join it)
        self._holding = 0  # nested held() blocks now running
        self._deferred: Interrupted | None = None  # what a signal inside them will raise when they end

    def __bool__(self) -> bool:
        return self.requested

    @property
    def reason(self) -> str | None:
        if not self.requested:
            return None
        return self.elsewhere or signal_name(self.signal)

    def set(self, signum: int | None = None) -> None:
        if not self.requested:
            self.during = self.current
        self.signal, self.requested = signum, True

    def set_elsewhere(self, by: str) -> None:
        """A stop asked of another process of a fit spread over processes (``by`` says so): this one stops with it,
        at the same step, and skips the analysis as they do (each of its passes needs all of them)."""
        if not self.requested:
            self.during, self.requested, self.elsewhere = self.current, True, by

    def now(self, what: str, droppable: bool = False) -> None:
        """From here on the work is the stage ``what`` (until the next :meth:`now`; a :meth:`stage` block inside
        comes back to it). For the transitions of a command that no block encloses: the data is read (droppable),
        then the steps start (kept) and what follows them is kept too."""
        if droppable and self.requested:
            raise Interrupted(self.signal, what)
        self.current, self.droppable = what, droppable

    @contextlib.contextmanager
    def stage(self, what: str, droppable: bool = False) -> Iterator[StopRequest]:
        """Run the block as the stage ``what``; the stage around it comes back afterwards.

        In a ``droppable`` stage a signal raises :class:`Interrupted` at once (and entering one
        after a request raises it straight away: the work would be thrown away anyway); in a kept
        stage it only sets the request, read at the next safe point.
        """
        if droppable and self.requested:
            raise Interrupted(self.signal, what)
        saved = self.current, self.droppable
        self.current, self.droppable = what, droppable
        try:
            yield self
        finally:
            self.current, self.droppable = saved

    @contextlib.contextmanager
    def held(self) -> Iterator[StopRequest]:
        """A block no signal cuts short: what a signal would raise inside it is raised when it ends.

        For the few milliseconds in which a run in a folder is replaced by the next one (the old
        ``result.json`` removed, the new files renamed into place): stopped half-way, the folder
        would hold neither run.
        """
        self._holding += 1
        try:
            yield self
        finally:
            self._holding -= 1
        if not self._holding and self._deferred is not None:
            exc, self._deferred = self._deferred, None
            raise exc

    def _raise(self, exc: Interrupted) -> None:
        if self._holding:
            self._deferred = self._deferred or exc
            return
        raise exc


def signal_name(signum: int | None) -> str:
    """``"SIGINT"``, ``"SIGTERM"``, or ``"request"`` for None (:func:`request_stop`)."""
    return signal.Signals(signum).name if signum is not None else "request"


def request_stop() -> bool:
    """Ask the innermost running fit to stop at its next step boundary (as a signal would).

    Returns False when no fit is running.
    """
    if not _active:
        return False
    _active[-1].set(None)
    return True


def current_request() -> StopRequest | None:
    """The request of the innermost open window (None when there is none)."""
    return _active[-1] if _active else None


@contextlib.contextmanager
def catch_interrupts(enabled: bool = True, second: str = "previous") -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a :class:`StopRequest` for the duration of the block.

    Parameters
    ----------
    enabled : bool
        False installs no handler (signals act as usual); :func:`request_stop` still works.
    second : {"previous", "raise"}
        What a second signal does: what the previous handlers do (the first signal puts them
        back), or raise :class:`Interrupted` (a third then acts as the previous handlers would).

    Yields
    ------
    StopRequest
        A window opened inside another one that has its handlers in place joins it and yields
        the same request.
    """
    if second not in ("previous", "raise"):
        raise ValueError(f"second must be 'previous' or 'raise', not {second!r}")
    main = threading.current_thread() is threading.main_thread()
    if enabled and main and _active and _active[-1].installed:
        outer = _active[-1]
        _active.append(outer)
        try:
            yield outer
        finally:
            _active.remove(outer)
        return
    request = StopRequest()
    previous: dict[int, _Handler] = {}
    if enabled and main:
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current == signal.SIG_IGN:  # ignored by whoever started us (e.g. `cmd &`): keep it so
                continue
            previous[signum] = current

        def handler(signum, frame):
            request.signals += 1
            if request.signals > 1:  # only reached with second="raise"
                _restore(previous)  # a third signal acts as it would without gradfit
                request._raise(Interrupted(signum, request.current, second=True))
                return
            request.set(signum)
            if second == "previous":
                _restore(previous)  # a second signal acts as it would without gradfit
            if request.droppable:
                request._raise(Interrupted(signum, request.current))

        for signum in previous:
            signal.signal(signum, handler)
        request.installed = bool(previous)
    _active.append(request)
    try:
        yield request
    finally:
        _active.remove(request)
        request.installed = False
        _restore(previous)


def _restore(previous: dict[int, _Handler]) -> None:
    for signum, old in previous.items():
        # None: a handler installed from C, which Python cannot reinstall; the default is the closest.
        signal.signal(signum, old if old is not None else signal.SIG_DFL)

"""One playground run: a fit in a worker thread, watched and steered a step at a time.

A :class:`Run` calls :func:`gradfit.fit` in a thread of its own with a callback (:class:`_Steer`) that the loop
calls at every step boundary, before the update: it hands the step's row (step, loss, validation loss, learning
rate, gradient norm, parameters) to the page, and then holds the fit there while the page says *pause*, lets one
update through on *step*, paces the fit to the page's *speed*, and ends it on *stop* (the loop's own stop at a
step boundary: the fit ends with ``stop_reason="interrupted"`` and a whole result). Nothing in the fit changes:
the same options give the same steps as :func:`gradfit.fit` called directly, so *reset* (a new run with the
same options) replays the same trajectory.

Rows wait in a queue that the server drains at its own pace (:meth:`Run.take`): the fit never waits on the page,
and the page never redraws more often than it asks. A run whose page is gone is stopped by the server
(:meth:`Run.stop`), and one that outlives :data:`MAX_SECONDS` stops itself.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gradfit.models.base import flatten_params
from gradfit.serve.curves import finite

#: The longest a run may take, wall clock, paused time included; then it stops as if told to.
MAX_SECONDS = 30 * 60.0
#: Rows kept waiting for the page at most; beyond them the oldest are dropped (counted in ``dropped``).
MAX_WAITING = 200_000


@dataclass
class RunEnd:
    """How a run ended: its result (None when it failed), or the message of the error that ended it."""

    result: Any = None
    error: str | None = None
    kind: str | None = None  # the error's class name (ConfigError, DataError...), None for a result


@dataclass
class _Controls:
    """What the page asked, read by the fit's thread at each step boundary (under ``lock``)."""

    lock: threading.Condition = field(default_factory=threading.Condition)
    paused: bool = False
    allowed: int = 0  # single updates allowed while paused
    stop: bool = False
    steps_per_second: float | None = None  # None: as fast as the machine goes


class _Steer:
    """The fit's callback: stream the row, then wait, pace or stop as the controls say."""

    def __init__(self, run: Run):
        self.run = run
        self.specs: list = []
        self.last = time.perf_counter()

    def on_model(self, model, fixed) -> None:
        self.specs = list(model.specs)
        self.run.built = model
        self.run.param_names = model.flat_names()

    def on_step(self, state) -> bool:
        self.run.put(_row(state, self.specs))
        controls, run = self.run.controls, self.run
        with controls.lock:
            while controls.paused and not controls.stop and controls.allowed == 0:
                controls.lock.wait(timeout=0.5)
                if run.overdue():
                    controls.stop = True
            if controls.paused and controls.allowed > 0:
                controls.allowed -= 1
            pace = controls.steps_per_second
        if pace and not controls.stop:
            wait = 1.0 / pace - (time.perf_counter() - self.last)
            if wait > 0:
                with controls.lock:
                    controls.lock.wait_for(lambda: controls.stop or controls.paused, timeout=wait)
        self.last = time.perf_counter()
        return controls.stop or run.overdue()


def _row(state, specs) -> list[float | None]:
    """``[step, loss, val_loss, lr, grad_norm, *parameters]`` with NaN and infinities as None (JSON has none)."""
    values = flatten_params(specs, state.params).values()
    return [finite(v) for v in (state.step, state.loss, state.val_loss, state.lr, state.grad_norm, *values)]


class Run:
    """A fit of ``model`` to ``data`` with ``options`` (keyword arguments of :func:`gradfit.fit`), in a thread.

    Parameters
    ----------
    fit : callable
        :func:`gradfit.fit` (given, so tests and the server share one import).
    paused : bool
        Start held before the first update (the page's *step* then lets updates through one at a time).
    renamed : callable
        Turns a message about ``data`` (a server's copy of an upload) into one about the file the user named.
    """

    def __init__(
        self,
        fit: Callable[..., Any],
        model: Any,
        data: Any,
        options: Mapping[str, Any],
        paused: bool = False,
        renamed: Callable[[str], str] = str,
    ):
        self.fit, self.model, self.data, self.options = fit, model, data, dict(options)
        self.renamed = renamed  # messages name the data as the user knows it
        self.controls = _Controls(paused=paused)
        self.param_names: list[str] = []
        self.built: Any = None  # the Model the fit built from ``model``, once it has
        self.end: RunEnd | None = None
        self.dropped = 0
        self.started = time.monotonic()
        self._rows: deque[list[float | None]] = deque()
        self._rows_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="gradfit-run", daemon=True)

    def start(self) -> Run:
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the page shows the result's message, not Python warnings
                result = self.fit(self.model, self.data, callbacks=[_Steer(self)], catch_signals=False, **self.options)
            self.end = RunEnd(result=result)
        except Exception as err:  # a failed run ends with its message; the server goes on
            from gradfit.errors import GradfitError

            known = isinstance(err, GradfitError)
            message = str(err) if known else f"internal error: {type(err).__name__}: {err}"
            self.end = RunEnd(error=self.renamed(message), kind=type(err).__name__)

    def put(self, row: list[float | None]) -> None:
        with self._rows_lock:
            if len(self._rows) >= MAX_WAITING:
                self._rows.popleft()
                self.dropped += 1
            self._rows.append(row)

    def take(self, most: int | None = None) -> list[list[float | None]]:
        """The rows streamed since the last call (at most ``most``, oldest first)."""
        with self._rows_lock:
            count = len(self._rows) if most is None else min(most, len(self._rows))
            return [self._rows.popleft() for _ in range(count)]

    @property
    def done(self) -> bool:
        return self.end is not None and not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def overdue(self) -> bool:
        return time.monotonic() - self.started > MAX_SECONDS

    # -- what the page asks --------------------------------------------------------------------

    def _set(self, **changes: Any) -> None:
        with self.controls.lock:
            for name, value in changes.items():
                setattr(self.controls, name, value)
            self.controls.lock.notify_all()

    def pause(self) -> None:
        self._set(paused=True, allowed=0)

    def play(self) -> None:
        self._set(paused=False, allowed=0)

    def step(self, count: int = 1) -> None:
        """Let ``count`` more updates through, then hold (pauses a playing run)."""
        with self.controls.lock:
            self.controls.allowed = (self.controls.allowed if self.controls.paused else 0) + max(1, int(count))
            self.controls.paused = True
            self.controls.lock.notify_all()

    def stop(self) -> None:
        self._set(stop=True)

    def speed(self, steps_per_second: float | None) -> None:
        pace = None if steps_per_second is None or not steps_per_second > 0 else float(steps_per_second)
        self._set(steps_per_second=pace)

"""Callbacks: how the loop talks to the outside (printing, progress bars, animations).

A callback is any object with some of ``on_model(model, fixed)``, ``on_start(total_steps)``,
``on_step(state)`` and ``on_end(result)``; ``on_step`` may return True to stop the fit (reason
``"callback"`` is reported as ``interrupted``). ``on_model`` is called by :func:`gradfit.fit` once
the model is built, before the fit starts: raising a GradfitError there refuses the fit, so a
front end can check its own options against the model (the CLI's ``--landscape``) at the door.
The loop never imports rich or matplotlib; the CLI brings its own.
"""

from __future__ import annotations

import sys
from typing import TextIO

from gradfit.train.stopping import StepState


class Callback:
    """Base class with no-op hooks (subclassing is optional; duck typing works)."""

    def on_start(self, total_steps: int) -> None:
        pass

    def on_step(self, state: StepState) -> bool | None:
        return None

    def on_end(self, result) -> None:
        pass


class PrintLoss(Callback):
    """Print the loss every ``every`` steps, as the seeds do (``if i % 10 == 0: print(loss)``).

    A callback with a true ``prints_loss`` attribute replaces it (the CLI prints through rich).
    """

    prints_loss = True

    def __init__(self, every: int, stream: TextIO | None = None):
        self.every = every
        self.stream = stream

    def on_step(self, state: StepState) -> None:
        if state.step % self.every == 0:
            val = "" if state.val_loss != state.val_loss else f"  val_loss {state.val_loss:.6g}"
            print(f"step {state.step:>6}  loss {state.loss:.6g}{val}", file=self.stream or sys.stdout)


def call(callbacks, hook: str, *args) -> bool:
    """Run ``hook`` on every callback that has it; True if any asked to stop."""
    stop = False
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None and fn(*args):
            stop = True
    return stop

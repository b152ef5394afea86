"""Callbacks that show a fit as it runs: a rich progress bar and the seeds' loss lines.

They follow :mod:`gradfit.train.callbacks`' protocol (``on_start``/``on_step``/``on_end``)
and print only through the console they are given, so a live progress bar and the loss
lines share the screen without tearing.
"""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["LossLines", "ParamLines", "ProgressBar"]


class ProgressBar:
    """A progress bar with the step and the current loss; removed when the fit ends.

    Use it as a context manager around the fit as well as a callback, so the bar is taken
    down even when the fit raises (``on_end`` is then never called).
    """

    def __init__(self, console: Console, refresh_every: float = 0.1):
        self.console = console
        self.refresh_every = refresh_every
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last = -math.inf

    def on_start(self, total_steps: int) -> None:
        self.close()  # a fresh bar for each fit that reuses this object
        self._progress = Progress(
            TextColumn("fitting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("fit", total=max(total_steps, 1), loss="-")
        self._last = -math.inf

    def on_step(self, state) -> None:
        if self._progress is None:
            return
        assert self._task is not None  # on_start sets the bar and its task together
        now = time.perf_counter()
        # Updating at every step would cost more than a small model's step; 10 Hz is enough to read.
        if now - self._last >= self.refresh_every or state.step + 1 >= state.total_steps:
            self._last = now
            self._progress.update(self._task, completed=state.step + 1, loss=f"{state.loss:.6g}")

    def on_end(self, result) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LossLines:
    """Print ``step K  loss L`` every ``every`` steps, as the seeds print ``tensor(3.8033)``."""

    prints_loss = True  # tells fit() not to add its own plain-print logger for log_every

    def __init__(self, console: Console, every: int, fmt: str = ".6g"):
        self.console = console
        self.every = every
        self.fmt = fmt

    def on_step(self, state) -> None:
        if state.step % self.every:
            return
        val = "" if math.isnan(state.val_loss) else f"  val_loss {state.val_loss:{self.fmt}}"
        self.console.print(f"step {state.step:>5}  loss {state.loss:{self.fmt}}{val}", markup=False)


class ParamLines:
    """Print the parameters and the loss at every step, as seed 002 does.

    ``step 0 : current params: [-0.5714, -0.1194, -1.2677]  loss: 15462.86``
    """

    def __init__(self, console: Console):
        self.console = console

    def on_step(self, state) -> None:
        values = [v for t in state.params.values() for v in t.detach().reshape(-1).double().tolist()]
        shown = ", ".join(f"{v:.4f}" for v in values)
        self.console.print(f"step {state.step} : current params: [{shown}]  loss: {state.loss:.4f}", markup=False)

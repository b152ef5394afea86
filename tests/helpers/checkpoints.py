"""Interrupting a fit at a chosen step and comparing a resumed fit with one never stopped (the checkpoint tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import gradfit

__all__ = ["COMPARED", "StopAt", "assert_same_fit", "decay_curve", "fit_stopped_at"]

COMPARED = ("step", "epoch", "loss", "val_loss", "lr", "grad_norm")  # every history column but wall-clock time


def decay_curve(n: int = 120) -> pd.DataFrame:
    """Columns t and y: ``2 exp(-0.7 t) + 0.3`` on [0, 3] with a small ripple, for ``a*exp(-b*t) + c``."""
    t = np.linspace(0, 3, n)
    return pd.DataFrame({"t": t, "y": 2.0 * np.exp(-0.7 * t) + 0.3 + 0.02 * np.sin(40 * t)})


class StopAt:
    """A callback that asks the fit to stop at step ``k``, as Ctrl-C would: the fit ends at the next step boundary,
    saving its checkpoint there."""

    def __init__(self, k: int):
        self.k = k

    def on_step(self, state):
        if state.step == self.k:
            from gradfit.train.interrupt import request_stop

            assert request_stop()  # the fit listens (it has an interrupt window open)


def fit_stopped_at(step: int, folder, model, data, **options):
    """``gradfit.fit(model, data, **options)`` asked to stop at ``step``, its checkpoint saved in ``folder``."""
    return gradfit.fit(model, data, callbacks=[StopAt(step)], checkpoint_dir=folder, **options)


def assert_same_fit(resumed, full) -> None:
    """The resumed fit equals the uninterrupted one bit for bit: parameters, history and snapshots."""
    assert resumed.steps == full.steps and resumed.stop_reason == full.stop_reason
    for name in full.params:
        assert torch.equal(resumed.params[name], full.params[name]), name
    for column in COMPARED:
        np.testing.assert_array_equal(resumed.history[column], full.history[column], err_msg=column)
    np.testing.assert_array_equal(resumed.history.snapshot_steps, full.history.snapshot_steps)
    np.testing.assert_array_equal(resumed.history.snapshots, full.history.snapshots)

"""Sweeps: many configurations of one fit (learning rates x optimizers x seeds), run as one vectorised fit.

A sweep answers "which learning rates converge, which diverge, and how fast" by fitting every
configuration of the product ``lr x optimizer x seed`` at once: the K members' parameters carry a
leading K dimension, one pass over the rows gives every member's loss and gradient
(:mod:`gradfit.train.batched_pass`), each member has its own optimizer state
(:mod:`gradfit.train.batched_steps`), and each stops as :func:`gradfit.fit` would stop it alone
(:mod:`gradfit.train.batched_loop`): a diverged member is frozen, the rest go on.

Each member's result equals a separate ``gradfit.fit`` with the same options (parameters, final loss,
steps and stop reason; tests/experiments/test_sweep.py holds them to 1e-6 in float64). The options are
checked by the fit's own rules (the same ConfigError messages); those whose one-fit behaviour a sweep does
not reproduce (mini-batches, validation and early stopping, schedules, bounds, time limits, checkpoints,
Levenberg-Marquardt and L-BFGS) are refused with a message rather than run differently. Two things a
single fit adds after its loop are not part of a sweep: the error bars, and the verdict's test for a
plateau short of a minimum (reason ``stalled``); the verdict's ``loss_increased`` (a loss that ended above
its start) is applied.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradfit.errors import ConfigError

__all__ = ["SweepResult", "sweep", "SWEEP_OPTIMIZERS", "descended"]

#: The optimizers a sweep runs (their updates are written out for many members: gradfit.train.batched_steps).
SWEEP_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
#: The most members (learning rates x optimizers x seeds) a sweep runs: each is a row of Python bookkeeping as well
#: as a slice of the batched tensors, so a typo such as seeds=10**9 is refused before anything is built.
MAX_MEMBERS = 100_000
#: The stop reasons of the members that did not descend: the loss overflowed, or ended above its start.
NOT_DESCENDED = ("diverged", "loss_increased")


def descended(row: dict) -> bool:
    """Whether a member (a row of :attr:`SweepResult.rows`) ended with a finite loss below its start."""
    return row["stop_reason"] not in NOT_DESCENDED and math.isfinite(row["loss"])


#: Fit options a sweep does not reproduce, and why (the message names the option).
_REFUSED = {
    "batch_size": "mini-batches (each member would need its own shuffled batches)",
    "val_split": "a validation split (early stopping is not mirrored)",
    "patience": "early stopping",
    "schedule": "learning-rate schedules",
    "max_time": "a time limit (a member's result would depend on the others' speed)",
    "checkpoint_every": "checkpoints",
    "log_every": "printing each fit's loss",
    "optimizer_options": "optimizer options beyond the learning rate and momentum",
    "scale": "scaled parameters",
}

#: Arguments of gradfit.fit that a sweep does not take.
_NOT_SWEPT = {
    "bounds": "its members descend without bounds (fit bounded problems one by one with gradfit.fit)",
    "stream": "it reads its rows into memory",
    "callbacks": "its members are not separate fits to call back",
    "checkpoint_dir": "it writes no checkpoints",
    "resume": "it writes no checkpoints to resume from",
    "catch_signals": "it runs to the end",
}


@dataclass(frozen=True, eq=False)
class SweepResult:
    """The members of a sweep, one row each.

    Attributes
    ----------
    rows : tuple of dict
        One per configuration: ``member``, ``optimizer``, ``lr``, ``seed``, ``loss`` (final, mean over the
        rows), ``start_loss``, ``steps``, ``stop_reason`` and each flat parameter.
    history : ndarray, (steps + 1, K)
        The loss at each step, member by member (NaN after a member stopped); the last row holds the final
        loss of members that ran the whole budget.
    param_names : tuple of str
        The flat parameter names (columns of ``rows``).
    row_pass : str
        How the members' sums were taken: ``sufficient_statistics``, ``vmap`` or ``members``.
    """

    rows: tuple[dict, ...]
    history: np.ndarray
    param_names: tuple[str, ...]
    row_pass: str
    rerun: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def to_pandas(self):
        """The table as a DataFrame, one row per configuration."""
        import pandas as pd

        return pd.DataFrame(list(self.rows))

    def table_csv(self) -> str:
        """The table as CSV text (sweep.csv): a header, one line per member, floats in their shortest exact
        form."""
        names = ["member", "optimizer", "lr", "seed", "loss", "start_loss", "steps", "stop_reason", *self.param_names]
        lines = [",".join(names)]
        lines += [",".join(_cell(row[name]) for name in names) for row in self.rows]
        return "\n".join(lines) + "\n"

    def history_csv(self) -> str:
        """The histories in long form as CSV text (history.csv): ``member,step,loss``, one line per member and
        step it looked at (and its final loss after a full budget)."""
        lines = ["member,step,loss"]
        for member, losses in self.histories().items():
            lines += [f"{member},{step},{_cell(float(v))}" for step, v in enumerate(losses)]
        return "\n".join(lines) + "\n"

    def histories(self) -> dict[int, np.ndarray]:
        """Each member's loss per step (the steps it looked at, then its final loss)."""
        out = {}
        for k, row in enumerate(self.rows):
            column = self.history[:, k]
            out[row["member"]] = column[~np.isnan(column)]
        return out

    @property
    def best(self) -> dict:
        """The row with the lowest final loss among the members that did not diverge (the first on a tie)."""
        rows = self.ranked()
        if not rows:
            raise ConfigError("Every member of the sweep diverged: there is no best configuration.")
        return rows[0]

    def ranked(self) -> list[dict]:
        """The members that did not diverge, lowest final loss first."""
        ok = [r for r in self.rows if r["stop_reason"] != "diverged" and math.isfinite(r["loss"])]
        return sorted(ok, key=lambda r: (r["loss"], r["member"]))

    def race(self, best: int = 3, **options):
        """The ``best`` members fitted again one by one (:func:`gradfit.experiments.race.run_race`), for their
        paths on one landscape."""
        from gradfit.experiments.race import run_race

        picked = self.ranked()[:best]
        if not picked:
            raise ConfigError("Every member of the sweep diverged: there is no path to draw.")
        rerun, seeded = dict(self.rerun), len({r["seed"] for r in self.rows}) > 1
        model, data, common = rerun["model"], rerun["data"], dict(rerun["common"])
        runs = []
        for r in picked:
            runs.append({"optimizer": r["optimizer"], "lr": r["lr"], "seed": r["seed"], "label": _label(r, seeded)})
        return run_race(model, data, runs=runs, **{**common, **options})


def _cell(value) -> str:
    """A CSV field: the shortest exact text of a float (``inf``, ``-inf``; NaN empty), else the value's text."""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def _label(row: Mapping, seeded: bool) -> str:
    return f"{row['optimizer']}, lr {row['lr']:.3g}" + (f", seed {row['seed']}" if seeded else "")


def sweep(
    model,
    data: Any = None,
    *,
    lr: float | Sequence[float],
    optimizer: str | Sequence[str] = "sgd",
    seeds: int | Sequence[int] = 1,
    init_random: bool = False,
    x: str | Sequence[str] | None = None,
    y: str | None = None,
    init: Mapping[str, Any] | str | None = None,
    params: Sequence[str] | str | None = None,
    fix: Sequence[str] | str | None = None,
    model_options: Mapping[str, Any] | None = None,
    drop_nan: bool = False,
    read: Mapping[str, Any] | None = None,
    sigma: str | Any = None,
    absolute_sigma: bool = False,
    weights: str | Any = None,
    **options: Any,
) -> SweepResult:
    """Fit every configuration of ``lr x optimizer x seed`` at once, each as :func:`gradfit.fit` would alone.

    Parameters
    ----------
    model, data, x, y, init, params, fix, model_options, drop_nan, read, sigma, absolute_sigma, weights
        As for :func:`gradfit.fit`.
    lr : float or sequence of float
        The learning rates.
    optimizer : str or sequence of str
        One or more of ``sgd``, ``momentum``, ``nesterov``, ``adam`` (aliases as for a fit).
    seeds : int or sequence of int
        ``N`` for the seeds ``0 .. N-1``, or the seeds themselves. A seed draws a member's start when
        ``init_random`` (as ``gradfit.fit(seed=s, init="random")``); otherwise the members of one optimizer and
        lr are the same fit.
    init_random : bool
        Start each member from random values drawn with its seed (``init="random"``).
    **options
        Fit options shared by every member (``steps``, ``tol``, ``target_loss``, ``dtype``, ``loss``,
        ``momentum``...). Those a sweep does not reproduce are refused (see the module).

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> s = sweep("linear", "builtin:linear", y="y", lr=[0.01, 0.1, 3.0, 1e3], steps=50, dtype="float64")
    >>> [r["stop_reason"] for r in s.rows]
    ['max_steps', 'max_steps', 'loss_increased', 'diverged']
    """
    from gradfit.experiments.sweep_members import fit_members

    configs = _configurations(lr, optimizer, seeds, options)
    if init_random:
        if init is not None:
            raise ConfigError("Give either init_random=True (--init-random) or init=..., not both.")
        init = "random"
    common = dict(
        x=x, y=y, init=init, params=params, fix=fix, model_options=model_options, drop_nan=drop_nan, read=read
    )
    common.update(sigma=sigma, absolute_sigma=absolute_sigma, weights=weights)
    out = fit_members(model, data, configs, common, options)
    rerun = {"model": model, "data": data, "common": {**common, **options}}
    return SweepResult(tuple(out.rows), out.history, tuple(out.param_names), out.row_pass, rerun)


def _configurations(lr, optimizer, seeds, options: dict) -> list[dict]:
    """The members, optimizer first, then lr, then seed (members of one optimizer sit together), each checked
    as a fit's options are."""
    from gradfit.optim.registry import optimizer_name
    from gradfit.options import OPTIONS
    from gradfit.preparation import fit_config

    for name, why in _REFUSED.items():
        value = options.get(name)
        if value is not None and value is not False and value != {}:
            raise ConfigError(
                f"A sweep does not run {why} ({name!r}): every member must behave as a separate full-batch fit. "
                f"Leave out {name!r}, or run the configurations one by one with gradfit.fit."
            )
    for name, why in _NOT_SWEPT.items():
        if name in options:
            raise ConfigError(f"A sweep does not take {name!r}: {why}.")
    for name in ("lr", "optimizer", "seed"):
        if name in options:
            raise ConfigError(f"{name!r} is a sweep's own argument; give it as lr=..., optimizer=..., seeds=...")
    if isinstance(lr, (str, bytes)):
        raise ConfigError(f"lr takes a number or a list of numbers (the CLI's --lr reads LOW:HIGH:N); got {lr!r}.")
    lrs = [lr] if isinstance(lr, (int, float)) else list(lr)
    names = [optimizer] if isinstance(optimizer, str) else list(optimizer)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, Sequence)):
        raise ConfigError(f"seeds must be a count or a list of whole numbers; got {seeds!r}.")
    count = len(lrs) * len(names) * (seeds if isinstance(seeds, int) else len(seeds))
    if count > MAX_MEMBERS:
        raise ConfigError(
            f"A sweep of {len(lrs)} learning rates x {len(names)} optimizers x "
            f"{seeds if isinstance(seeds, int) else len(seeds)} seeds is {count} members, more than the {MAX_MEMBERS} "
            f"a sweep runs. Give fewer learning rates, optimizers or seeds (--lr, --optimizer, --seeds)."
        )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not lrs or not names or not seed_list:
        raise ConfigError("A sweep needs at least one learning rate, one optimizer and one seed.")
    configs = []
    for name in names:
        key = optimizer_name(name)
        if key not in SWEEP_OPTIMIZERS:
            raise ConfigError(
                f"A sweep runs the optimizers {', '.join(SWEEP_OPTIMIZERS)}; {name!r} is not one of them "
                f"(its steps are not written out for many fits at once). Run it with gradfit.fit or gradfit race."
            )
        # The whole configuration is checked once per optimizer; the lr and the seed, the only options that vary,
        # by their own rows of the option table (a problem there is raised by the fit's own check, its message).
        base = fit_config({**options, "optimizer": key, "lr": lrs[0], "seed": seed_list[0]})
        for rate in lrs:
            for seed in seed_list:
                if rate is None or OPTIONS["lr"].problem(rate) or OPTIONS["seed"].problem(seed):
                    fit_config({**options, "optimizer": key, "lr": rate, "seed": seed})
                    raise ConfigError(f"A sweep needs a number for each learning rate; got {rate!r}.")
                # "config": the options every member of this optimizer shares (its own lr and seed are beside it)
                configs.append({"optimizer": key, "lr": rate, "seed": seed, "config": base})
    return configs

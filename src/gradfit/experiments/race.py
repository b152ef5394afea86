"""The optimizer race: several fits of one problem from one start, and one landscape for all.

Each run is ``gradfit.fit(model, data, **common, **run)``: the same model, data, initial values
and seed, differing only in the optimizer, its learning rate or any fit option given per run.
The landscape is computed once, on a grid spanning every run's path, so the paths can be
drawn on the same contours and compared.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gradfit.analysis.landscape import (
    Landscape,
    compute_landscape,
    covering_span,
    path_of,
    pick_params,
)
from gradfit.errors import ConfigError, GradfitWarning

__all__ = ["Race", "descended", "parse_run", "run_race"]


@dataclass(frozen=True, eq=False)
class Race:
    """The runs of a race and the landscape they share.

    Attributes
    ----------
    labels : tuple of str
        One per run (``"adam, lr 0.1"``); ``" (diverged)"`` is appended to runs that diverged.
    results : tuple of FitResult
    landscape : Landscape or None
        On a grid spanning the path of every run that descended (see :func:`descended`); runs that
        diverged or blew up leave the frame. None when the model has fewer than two parameters.
        Its own ``path`` is the first run's.
    paths : tuple of ndarray, each (m_i, 2)
        Each run's two landscape parameters at its history snapshots.
    path_steps : tuple of ndarray
        The steps of those snapshots.
    """

    labels: tuple[str, ...]
    results: tuple
    landscape: Landscape | None
    paths: tuple[np.ndarray, ...] = ()
    path_steps: tuple[np.ndarray, ...] = ()

    @property
    def diverged(self) -> tuple[bool, ...]:
        return tuple(r.stop_reason == "diverged" for r in self.results)


def run_race(
    model,
    data=None,
    *,
    runs: Sequence[Mapping] | None = None,
    optimizers: Sequence[str] | None = None,
    lrs: Sequence[float] | None = None,
    landscape_params: tuple[str, str] | None = None,
    n: int = 101,
    **common,
) -> Race:
    """Fit the same problem with several optimizers, learning rates or option sets.

    Parameters
    ----------
    model, data
        As for :func:`gradfit.fit`.
    runs : sequence of dict, optional
        Fit options per run (``{"optimizer": "adam", "lr": 0.1}``); an optional ``"label"`` key names it.
    optimizers : sequence of str, optional
        Optimizer names, each with its default learning rate or a given one: ``"adam:0.1"``.
        With ``lrs`` of the same length, the two are paired.
    lrs : sequence of float, optional
        Learning rates of one optimizer (``common["optimizer"]``, default ``"sgd"``).
    landscape_params : (str, str), optional
        The two flat parameters of the landscape (default: the first two free ones).
    n : int, default 101
        Grid points per axis of the landscape.
    **common
        Options every run shares (``y``, ``init``, ``steps``, ``seed``...), passed to :func:`gradfit.fit`.

    Returns
    -------
    Race

    Examples
    --------
    >>> race = run_race("linear", "builtin:linear", y="y", optimizers=["sgd:0.1", "adam:0.1"], steps=50, n=31)
    >>> race.labels
    ('sgd, lr 0.1', 'adam, lr 0.1')
    """
    from gradfit.api import fit

    specs = _runs(runs, optimizers, lrs, common)
    labels, results = [], []
    for spec in specs:
        spec = dict(spec)
        label = spec.pop("label", None)
        options = {**common, **spec}
        if options.get("lr", 0) is None:  # lm: no learning rate (see _runs)
            del options["lr"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GradfitWarning)
            result = fit(model, data, catch_signals=False, **options)  # Ctrl-C stops the race
        label = label or _label(spec, common, result)
        _warn_as(label, caught)
        labels.append(label + (" (diverged)" if result.stop_reason == "diverged" else ""))
        results.append(result)
    labels = _unique(labels)

    land = None
    paths: tuple[np.ndarray, ...] = ()
    steps: tuple[np.ndarray, ...] = ()
    fitted = results[0].model
    assert fitted is not None  # gradfit.fit returns the model it fitted
    if len(fitted.flat_names()) >= 2 or landscape_params is not None:
        names = pick_params(results[0], landscape_params)
        got = [path_of(r, names) for r in results]
        paths, steps = tuple(p for p, _ in got), tuple(s for _, s in got)
        # A run that diverged or ended above its starting loss may run off to huge values; spanning its
        # path would shrink every other path to a dot, so the grid spans the runs that descended, and
        # the others too unless that would widen it more than covering_span's reach.
        good = [i for i, r in enumerate(results) if descended(r)] or list(range(len(results)))
        finals = [np.asarray([results[i].flat_params[k] for k in names]).reshape(1, 2) for i in good]
        span, _ = covering_span(paths, good, finals)
        land_data = None if isinstance(data, (str, os.PathLike)) else data
        land = compute_landscape(results[0], land_data, params=names, n=n, span=span)
    return Race(labels=tuple(labels), results=tuple(results), landscape=land, paths=paths, path_steps=steps)


def _warn_as(label: str, caught: list) -> None:
    """Warn again what one run's fit warned, its verdicts prefixed with the run's label (``adam, lr 0.1: Not
    converged...``): in a race, a warning that does not say which run it is about says little."""
    for w in caught:
        if issubclass(w.category, GradfitWarning):
            warnings.warn(f"{label}: {w.message}", GradfitWarning, stacklevel=3)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def descended(result) -> bool:
    """True when the run did not diverge and ended at a loss no higher than where it started."""
    loss = result.history.loss
    if result.stop_reason == "diverged" or not len(loss) or not np.isfinite(result.loss):
        return False
    return not (np.isfinite(loss[0]) and result.loss > loss[0])


def parse_run(text: str) -> dict:
    """``"adam"`` -> ``{"optimizer": "adam"}``; ``"adam:0.1"`` -> ``{"optimizer": "adam", "lr": 0.1}``.

    Levenberg-Marquardt (``"lm"``) has no learning rate (its steps are sized by the damping λ), so
    ``"lm:0.1"`` is refused.
    """
    name, sep, lr = str(text).partition(":")
    if not name.strip():
        raise ConfigError(
            f"An optimizer in a race must be a name or 'name:lr' such as 'adam:0.1'. Got {text!r} instead."
        )
    out: dict = {"optimizer": name.strip()}
    if sep:
        if _without_lr(out["optimizer"]):
            raise ConfigError(
                f"Levenberg-Marquardt has no learning rate (it sizes its own steps), so race it as "
                f"'{out['optimizer']}' without ':lr'. Got {text!r} instead."
            )
        try:
            out["lr"] = float(lr)
        except ValueError:
            raise ConfigError(
                f"The learning rate in {text!r} must be a number, as in 'adam:0.1'. Got {lr!r} instead."
            ) from None
    return out


def _without_lr(optimizer) -> bool:
    """Whether the optimizer takes no learning rate (Levenberg-Marquardt)."""
    from gradfit.optim.registry import LEAST_SQUARES, optimizer_name

    return optimizer_name(optimizer) in LEAST_SQUARES


def _runs(runs, optimizers, lrs, common) -> list[dict]:
    given = [k for k, v in (("runs", runs), ("optimizers", optimizers), ("lrs", lrs)) if v is not None]
    if not given:
        raise ConfigError(
            "A race needs runs: give optimizers=['sgd', 'adam:0.1'], lrs=[0.01, 0.1] or runs=[{...}, ...]."
        )
    if given == ["optimizers", "lrs"]:
        if len(optimizers) != len(lrs):
            raise ConfigError(
                f"Given both, 'optimizers' and 'lrs' are paired and must have the same length. "
                f"Got {len(optimizers)} and {len(lrs)} instead."
            )
        out = [{**parse_run(o), "lr": lr} for o, lr in zip(optimizers, lrs)]
    elif len(given) > 1:
        raise ConfigError(
            f"Give one of 'runs', 'optimizers' or 'lrs' (or optimizers with lrs, paired). Got {', '.join(given)}."
        )
    elif runs is not None:
        out = []
        for r in runs:
            if not isinstance(r, Mapping):
                raise ConfigError(f"Each entry of 'runs' must be a dict of fit options. Got {r!r} instead.")
            out.append(dict(r))
    elif optimizers is not None:
        out = [parse_run(o) for o in ([optimizers] if isinstance(optimizers, str) else optimizers)]
    else:
        out = [{"lr": lr} for lr in ([lrs] if isinstance(lrs, (int, float)) else lrs)]
    if not out:
        raise ConfigError("A race needs at least one run; the list given is empty.")
    for run in out:
        if _without_lr(run.get("optimizer", common.get("optimizer", "sgd"))):
            if "lr" in run:
                raise ConfigError(
                    "Levenberg-Marquardt ('lm') has no learning rate to race (it sizes its own steps); "
                    "race it against other optimizers instead: --optimizers lm,adam:0.05 (library: "
                    "optimizers=['lm', 'adam:0.05'])."
                )
            # A learning rate shared by the other runs means nothing to it: it runs without one.
            run["lr"] = None
    return out


def _label(spec: Mapping, common: Mapping, result) -> str:
    """``"adam, lr 0.001"``: the optimizer and learning rate the run used (``"auto (lm)"`` when chosen for it)."""
    from gradfit.optim.registry import optimizer_name

    ran = str(result.config.get("optimizer"))
    asked = spec.get("optimizer", common.get("optimizer"))
    lr_given = spec.get("lr", common.get("lr")) is not None
    chosen = (optimizer_name(asked) != ran) if asked is not None else not lr_given  # a learning rate alone means sgd
    lr = result.config.get("lr")
    parts = [f"auto ({ran})" if chosen else ran] + ([f"lr {float(lr):.3g}"] if lr is not None else [])  # lm has none
    parts += [f"{k}={v}" for k, v in spec.items() if k not in ("optimizer", "lr")]
    return ", ".join(parts)


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if labels.count(label) == 1 else f"{label} #{seen[label]}")
    return out

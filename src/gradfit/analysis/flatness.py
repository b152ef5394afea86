"""Where a model is numerically flat: parameters whose effect on the predictions vanishes at a point.

``a*exp(-b*hp) + c`` started at the default ``b = 1`` on horsepowers of 50 to 335 computes
``exp(-110)`` to ``exp(-335)``: about 1e-48 and below (zero in float32). There the predictions do not
move with ``a`` or ``b``, every optimizer sees a zero gradient for them and stops at once with ``c``
at the mean: a plateau, not a minimum, and not a sign that ``a`` "has no effect". The same happens
with ``exp`` of a large positive argument (overflow), and with saturated ``sigmoid``/``tanh``.

:func:`flatness` finds the parameters whose Jacobian column is negligible at a point and probes
nearby starts, one entry rescaled by a power of ten at a time, for one where they matter again,
so the message can name the cause and the start to use instead (``--init b=0.01``).

Examples
--------
>>> import torch
>>> from gradfit.models.builder import build_model
>>> model = build_model("a*exp(-b*hp) + c", ("hp",))
>>> hp = torch.linspace(50, 335, 32, dtype=torch.float64)[:, None]
>>> y = 30 * torch.exp(-0.01 * hp[:, 0]) + 10
>>> f = flatness(model, hp, y, {"a": 1.0, "b": 1.0, "c": 1.0}, ["a", "b", "c"])
>>> f.vanishing, f.remedy
(('a', 'b'), {'b': 0.01})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gradfit.analysis import curvature as cv
from gradfit.rowpass import chunk_rows, evenly_spaced, fold

__all__ = ["Flatness", "flatness", "MAX_PROBE_PARAMS"]

VANISH = 1e-9  # an entry whose effect is below this fraction of the targets' spread has no visible effect
REVIVED = 1e-3  # ... and above this one it clearly matters (the probe's test for a usable start)
PROBE_ROWS = 2_000  # rows (evenly spaced) the Jacobians are taken on
MAX_PROBE_PARAMS = 50  # beyond this many free entries the probe costs more than it tells
FACTORS = (1e-1, 1e1, 1e-2, 1e2, 1e-3, 1e3, 1e-4, 1e4, 1e-6, 1e6)  # smallest change first


@dataclass(frozen=True)
class Flatness:
    """What :func:`flatness` found.

    Attributes
    ----------
    vanishing : tuple of str
        Free entries with no visible effect on the predictions at the point.
    overflow : bool
        The predictions (or their derivatives) are not finite at the point.
    remedy : dict or None
        One entry's value at which the model is finite and every vanishing entry matters again.
    """

    vanishing: tuple[str, ...] = ()
    overflow: bool = False
    remedy: dict[str, float] | None = None

    @property
    def flat(self) -> bool:
        return bool(self.vanishing) or self.overflow

    def sentence(self, where: str = "at the start", remedy: bool = True) -> str:
        """The diagnosis in words ('' when the point is not flat), with the start to use when ``remedy``."""
        if not self.flat:
            return ""
        if self.overflow:
            text = f"{where} the model's predictions overflow (they are not finite)"
        else:
            names = _join(self.vanishing)
            text = (
                f"{where} {names} {'has' if len(self.vanishing) == 1 else 'have'} no visible effect on the "
                f"predictions (the model underflows or saturates there, e.g. exp of a large negative number)"
            )
        if self.remedy and not remedy:
            ((name, value),) = self.remedy.items()
            text += f"; with {name} = {value:.3g} instead, the model is finite and every parameter matters"
        elif self.remedy:
            ((name, value),) = self.remedy.items()
            text += (
                f"; with {name} = {value:.3g} instead, the model is finite and every parameter matters: start there "
                f"(--init {name}={value:.3g}, or init={{'{name}': {value:.3g}}})"
            )
        else:
            text += "; no nearby start was found where it is not: give initial values on the scale of the data (--init)"
        return text + "."


def flatness(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    values: Mapping[str, float],
    free: Sequence[str],
    max_params: int = MAX_PROBE_PARAMS,
    chunk_size: int | None = None,
    sums=None,
) -> Flatness:
    """The entries of ``free`` (flat names) that do not move the predictions at ``values``, and a remedy.

    Parameters
    ----------
    model : Model
    x, y : Tensor
        Inputs ``(n, k)`` and targets ``(n,)`` (at most :data:`PROBE_ROWS` evenly spaced rows are used).
    values : mapping
        Every flat parameter's value (``result.flat_params``).
    free : names
        The flat names that were fitted.
    max_params : int
        More free entries than this: nothing is probed (an empty :class:`Flatness`).
    chunk_size : int, optional
        Rows per chunk of the Jacobians (a fit's ``FitConfig.chunk_size``; default
        :data:`gradfit.rowpass.CHUNK_ROWS`).
    sums : PointSums, optional
        What Levenberg-Marquardt summed at its final point (:class:`gradfit.optim.lm.PointSums`): when its block is
        the very Jacobian the probe would take at ``values`` (:func:`_kept_jacobian`), the probe reads its columns
        instead of computing them again.
    """
    names = list(model.flat_names())  # the order of the model's specs, which curvature.DatasetView assumes
    free_idx = [names.index(n) for n in free if n in names]
    if not free_idx or len(free_idx) > max_params or y is None or len(x) == 0:
        return Flatness()
    base = np.array([float(values[n]) for n in names], dtype=np.float64)
    kept = _kept_jacobian(sums, model, x, y, [names[i] for i in free_idx], base[free_idx], chunk_size)
    if len(x) > PROBE_ROWS:
        rows = evenly_spaced(len(x), PROBE_ROWS)
        x, y = x[rows].double(), y[rows].double()
    else:  # every row, in order: the rows themselves (x[arange(n)] is a copy of the same numbers)
        x, y = x.double(), y.double()
    spread = float(y.std()) if len(y) > 1 else 0.0
    spread = spread if spread > 0 else max(float(y.abs().mean()), 1.0)
    effects = _effects(model, x, base, free_idx, spread, chunk_size, kept)
    if effects is None:
        every = list(range(len(free_idx)))
        return Flatness(overflow=True, remedy=_probe(model, x, base, free_idx, spread, names, every, chunk_size))
    gone = [k for k, e in enumerate(effects) if e <= VANISH]
    if not gone:
        return Flatness()
    vanishing = tuple(names[free_idx[k]] for k in gone)
    return Flatness(vanishing=vanishing, remedy=_probe(model, x, base, free_idx, spread, names, gone, chunk_size))


def _kept_jacobian(sums, model, x, y, free: list[str], at: np.ndarray, chunk_size: int | None) -> torch.Tensor | None:
    """The Jacobian :func:`_effects` would compute at ``at`` on the rows ``x``, read from Levenberg-Marquardt's
    final block ``[J | r]`` when it is that very one; else None.

    It is when the block is of the same model and rows (the same objects), unweighted, in one chunk of float64 rows
    (so in the probe's one chunk: every row, none cast), from the formula's derivative graph (the probe's own
    pass, so the same operations on the same numbers), with the same columns at the same values to the bit. Its
    entries must be finite: then so are the predictions (``r + y``), and the probe's finiteness test passes as it
    would; otherwise the probe computes them and says so itself.
    """
    if sums is None or sums.block is None or sums.jacobian != "formula derivative":
        return None
    if any(a is not b for a, b in zip(sums.source, (model, x, y, None), strict=True)):
        return None
    if x.dtype != torch.float64 or len(x) > min(PROBE_ROWS, chunk_rows(chunk_size)):
        return None
    if sums.names != tuple(free) or sums.values.tobytes() != at.tobytes():
        return None
    J = sums.block[:, : len(free)]
    return J if bool(torch.isfinite(sums.block).all()) else None


def _effects(
    model,
    x,
    base: np.ndarray,
    free_idx: list[int],
    spread: float,
    chunk_size: int | None = None,
    kept: torch.Tensor | None = None,
) -> np.ndarray | None:
    """Each free entry's effect, ``|J_j| * max(|theta_j|, 1) / sqrt(m) / spread``; None when not finite.

    ``|J_j|`` is the norm of the chunks' column norms, so one chunk gives its norm exactly. ``kept``: the Jacobian at
    ``base`` on these rows, finite, already computed (:func:`_kept_jacobian`): the one chunk's, not taken again.
    """
    from gradfit.data.dataset import Dataset

    scale = np.maximum(np.abs(base[free_idx]), 1.0)
    if kept is not None:
        return torch.stack([kept.norm(dim=0)]).norm(dim=0).cpu().numpy() * scale / math.sqrt(len(kept)) / spread

    dataset = Dataset(x, torch.zeros(len(x), dtype=x.dtype), tuple(f"x{i}" for i in range(x.shape[1])))
    problem = cv.DatasetView(model, dataset, base, free_idx, chunk_size)

    def column_norms(acc, xc, _y, _w):
        if acc is None:
            return None  # not finite in an earlier chunk
        pred, J = problem.values_and_jacobian(problem.theta, xc)  # one pass: a formula's from its derivative graph
        if not (torch.isfinite(pred).all() and torch.isfinite(J).all()):
            return None
        norms, m = acc
        return [*norms, J.norm(dim=0)], m + J.shape[0]

    try:
        start: tuple[list[torch.Tensor], int] | None = ([], 0)
        acc = fold(column_norms, problem.rows(chunk_rows(chunk_size)), start)
    except (RuntimeError, ValueError, ArithmeticError):
        return None
    if acc is None:
        return None
    norms, m = acc
    return torch.stack(norms).norm(dim=0).cpu().numpy() * scale / math.sqrt(m) / spread


def _probe(
    model, x, base, free_idx, spread, names, gone: list[int], chunk_size: int | None = None
) -> dict[str, float] | None:
    """The first single-entry rescaling (smallest change first) at which every entry in ``gone`` matters."""
    for factor in FACTORS:
        for j in free_idx:
            trial = base.copy()
            trial[j] = base[j] * factor if base[j] != 0 else factor
            effects = _effects(model, x, trial, free_idx, spread, chunk_size)
            if effects is not None and all(effects[g] > REVIVED for g in gone):
                return {names[j]: float(trial[j])}
    return None


def _join(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

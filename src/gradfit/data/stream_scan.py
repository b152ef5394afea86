"""The one pass over a streamed file that checks its rows and gathers what a fit needs before it starts.

The in-memory reader sees every value when it converts a column; a streamed source sees them only
when it reads the file, so :func:`scan_file` reads it once, batch by batch, and reports what
:func:`gradfit.data.convert.as_dataset` would (NaN, inf, values too large for the dtype, sigma <= 0,
negative weights, too few rows) in its words, naming at most a few lines or rows per problem. On
the way it gathers each input's and the target's float64 sum, sum of squares, minimum and maximum,
the sum of the weights, and an evenly strided sample of the rows (for pictures and initial guesses),
so the file need not be read again for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from gradfit.data.columns import plural
from gradfit.data.file_batches import as_tensor
from gradfit.errors import DataError
from gradfit.rowpass import CHUNK_ROWS, Chunk

if TYPE_CHECKING:
    from gradfit.data.streamed import StreamedRows

__all__ = ["Scan", "scan_file"]

_NAN_FIX = "Clean the data or pass drop_nan=True (--drop-nan on the command line) to drop those rows."
_SHOWN = 5  # positions named per problem


@dataclass
class Scan:
    """What one pass over a streamed file found.

    Attributes
    ----------
    n_rows : int
        Rows used (after rows with NaN were dropped, with ``drop_nan``).
    file_rows, dropped : int
        Rows in the file, and rows dropped for NaN.
    note : str or None
        ``"dropped 3 rows with missing values (lines 4, 9, 12)"``, as the in-memory reader says it.
    sums, squares, mins, maxs : dict
        Per input and target column, over the used rows, in float64.
    weight_sum : float or None
        Σ wᵢ over the used rows (None when unweighted).
    sample : Chunk
        At most ``sample_rows`` rows, every ``stride``-th used row from the first, as ``(x, y, w)`` tensors.
    stride : int
        The sample's step in used rows (a power of 2).
    """

    n_rows: int
    file_rows: int
    dropped: int
    note: str | None
    sums: dict[str, float]
    squares: dict[str, float]
    mins: dict[str, float]
    maxs: dict[str, float]
    weight_sum: float | None
    sample: Chunk
    stride: int


@dataclass
class _Found:
    """Rows with one kind of problem in one column: how many, and the first few file positions."""

    count: int = 0
    first: list = field(default_factory=list)
    shown: int = _SHOWN

    def add(self, positions: np.ndarray) -> None:
        self.count += len(positions)
        if len(self.first) < self.shown:
            self.first += positions[: self.shown - len(self.first)].tolist()


class _Sampler:
    """Every ``stride``-th row seen, the stride doubling whenever more than ``limit`` rows are held."""

    def __init__(self, limit: int):
        self.limit, self.stride, self.seen = max(1, int(limit)), 1, 0
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, cols: dict[str, np.ndarray]) -> None:
        n = len(next(iter(cols.values())))
        first = (-self.seen) % self.stride
        part = {k: v[first :: self.stride].copy() for k, v in cols.items()}  # a copy: the batch is let go
        part["_i"] = np.arange(self.seen + first, self.seen + n, self.stride)
        self.parts.append(part)
        self.seen += n
        while sum(len(p["_i"]) for p in self.parts) > self.limit:
            self.stride *= 2
            self.parts = [{k: v[p["_i"] % self.stride == 0] for k, v in p.items()} for p in self.parts]

    def joined(self, names: list[str]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in self.parts] or [np.zeros(0)]) for k in names}


def scan_file(rows: StreamedRows, sample_rows: int) -> Scan:
    """Read ``rows``' file once: raise DataError listing every problem, else the :class:`Scan`."""
    file, dtype, kind = rows.file, rows.dtype, ("sigma" if rows.sigma else "weights")
    wname = rows.sigma or rows.weights
    stat_names = list(dict.fromkeys(list(rows.x_names) + ([rows.y_name] if rows.y_name else [])))
    sums, squares = dict.fromkeys(stat_names, 0.0), dict.fromkeys(stat_names, 0.0)
    mins, maxs = dict.fromkeys(stat_names, np.inf), dict.fromkeys(stat_names, -np.inf)
    found: dict[tuple[str, str], _Found] = {}
    dropped, sampler = _Found(shown=10), _Sampler(sample_rows)  # the in-memory note names 10 rows
    fmax = torch.finfo(dtype).max
    n = file_rows = 0
    wsum = 0.0
    for at, cols in file.batches(rows.used, CHUNK_ROWS):
        size = len(next(iter(cols.values())))
        positions = np.arange(at, at + size)
        file_rows += size
        nan: dict[str, np.ndarray] = {}
        for name, v in cols.items():
            finite = np.isfinite(v.sum())
            if not finite:
                nan_v, inf_v = np.isnan(v), np.isinf(v)
                if inf_v.any():
                    found.setdefault(("inf", name), _Found()).add(positions[inf_v])
                if nan_v.any():
                    nan[name] = nan_v
            if fmax < np.finfo(np.float64).max and np.nanmax(np.abs(v), initial=0.0) > fmax:
                big = np.isfinite(v) & (np.abs(v) > fmax)
                found.setdefault(("overflow", name), _Found()).add(positions[big])
        if nan:
            gone = np.logical_or.reduce(list(nan.values()))
            if rows.drop_nan:
                dropped.add(positions[gone])
                cols, positions = {k: v[~gone] for k, v in cols.items()}, positions[~gone]
            else:
                for name, m in nan.items():
                    found.setdefault(("nan", name), _Found()).add(positions[m])
        if wname is not None:
            values = as_tensor(cols[wname]).to(dtype)
            bad = (values <= 0 if kind == "sigma" else values < 0).numpy()
            if bad.any():
                found.setdefault((kind, wname), _Found()).add(positions[bad])
            w = (1.0 / values.double() ** 2 if kind == "sigma" else values.double()).to(dtype)
            small = ~torch.isfinite(w).numpy() & np.isfinite(cols[wname])
            if small.any():
                found.setdefault(("tiny", wname), _Found()).add(positions[small])
            wsum += float(w.double().sum())
        for name in stat_names:
            v = cols[name]
            if len(v):
                sums[name] += float(v.sum())
                with np.errstate(over="ignore"):  # a square past float64's range is inf, as it is
                    squares[name] += float(np.dot(v, v))
                mins[name], maxs[name] = min(mins[name], float(v.min())), max(maxs[name], float(v.max()))
        n += len(positions)
        sampler.add(cols)
    problems = _problems(rows, found, n, file_rows, wsum)
    if problems:
        head = f"Cannot use the data from {rows.source}: {plural(len(problems), 'problem')}:"
        raise DataError("\n".join([head] + [f"  - {p}" for p in problems]))
    note = None
    if dropped.count:
        shown = file.where(dropped.first) + (", ..." if dropped.count > len(dropped.first) else "")
        note = f"dropped {plural(dropped.count, 'row')} with missing values ({shown})"
    sample = rows.chunk_of(sampler.joined(rows.used), dtype)
    weight_sum = None if wname is None else wsum
    return Scan(n, file_rows, dropped.count, note, sums, squares, mins, maxs, weight_sum, sample, sampler.stride)


def _problems(rows: StreamedRows, found: dict, n: int, file_rows: int, wsum: float) -> list[str]:
    """The problems found, in the in-memory reader's words."""
    file, src, kind = rows.file, rows.source, str(rows.dtype).replace("torch.", "")
    if file_rows == 0:
        shown = ", ".join(file.names[:6])
        return [f"{src} has columns ({shown}) but no data rows. Check that the file was saved completely."]
    out = []
    for (what, name), f in found.items():
        at = file.where(f.first) + (", ..." if f.count > len(f.first) else "")
        where = f"{src}, column '{name}'"
        if what == "nan":
            out.append(f"{where}: {plural(f.count, 'missing value')} (NaN or empty) at {at}. {_NAN_FIX}")
        elif what == "inf":
            fix = "Replace or remove them; a fit needs finite numbers."
            out.append(f"{where}: {plural(f.count, 'value')} infinite (inf or -inf) at {at}. {fix}")
        elif what == "overflow":
            fix = "Fit in float64: dtype='float64' (--dtype float64)."
            out.append(f"{where}: {plural(f.count, 'value')} too large for {kind} at {at}. {fix}")
        elif what == "sigma":
            out.append(
                f"{src}, sigma column '{name}': {f.count} sigma value(s) <= 0 at {at}. A standard deviation must "
                f"be > 0: correct them, or drop those rows (to leave a row out of the fit, use weights with a weight "
                f"of 0 instead)."
            )
        elif what == "weights":
            fix = "Weights must be >= 0 (0 leaves a row out)."
            out.append(f"{src}, weights column '{name}': {f.count} negative weight(s) at {at}. {fix}")
        else:
            out.append(
                f"{src}, sigma column '{name}': {f.count} sigma value(s) so small that 1/sigma² overflows "
                f"{rows.dtype} at {at}. Fit in float64: dtype='float64' (--dtype float64), or give the sigmas in "
                f"other units."
            )
    if not out and (rows.sigma or rows.weights) and n and not wsum > 0:
        col = rows.sigma or rows.weights
        fix = "Give at least one row a weight > 0."
        out.append(f"{src}, weights column '{col}': every weight is 0, so no row counts. {fix}")
    if not out and n < 2:
        after = " after dropping the rows with missing values" if rows.drop_nan and n < file_rows else ""
        out.append(f"{src}: {plural(n, 'row')}{after}, but at least 2 are needed. Give more data.")
    return out

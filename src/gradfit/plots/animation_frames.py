"""Which history snapshots an animation shows, and the parameters at each.

An animation draws one frame per kept parameter snapshot, up to a cap: every frame is a PNG
inside an HTML page or a GIF, so the cap is what keeps files small. The first and the last
snapshot (the start and the fitted state) are always shown.
"""

from __future__ import annotations

import numpy as np
import torch

from gradfit.errors import ConfigError

__all__ = ["sample_frames", "snapshot_params", "upto"]


def sample_frames(snapshot_steps, max_frames: int = 100) -> np.ndarray:
    """Indices of the snapshots to draw: all of them, or ``max_frames`` evenly spaced.

    Parameters
    ----------
    snapshot_steps : array-like of int
        The steps of the kept snapshots (``History.snapshot_steps``), in increasing order.
    max_frames : int, default 100
        The most frames to draw (>= 2). 100 frames keep an embedded animation (``to_jshtml``,
        ``.html``) well under matplotlib's ``animation.embed_limit`` (20 MB by default). For
        more, raise both: ``FitAnimation(result, max_frames=400)`` and
        ``matplotlib.rcParams["animation.embed_limit"] = 100`` (in MB); matplotlib otherwise
        drops the frames past the limit with a warning.

    Returns
    -------
    numpy.ndarray of int
        Sorted, unique indices into ``snapshot_steps``; the first (0) and the last are always in.

    Examples
    --------
    >>> sample_frames(range(5))
    array([0, 1, 2, 3, 4])
    >>> sample_frames(range(101), max_frames=5)
    array([  0,  25,  50,  75, 100])
    """
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 2:
        raise ConfigError(f"The 'max_frames' parameter must be an integer >= 2. Got {max_frames!r} instead.")
    m = len(np.asarray(snapshot_steps))
    if m == 0:
        raise ConfigError("There is nothing to animate: the fit's history holds no parameter snapshots.")
    if m <= max_frames:
        return np.arange(m)
    # Rounding evenly spaced positions keeps both ends and never repeats an index when m > max_frames.
    return np.unique(np.round(np.linspace(0, m - 1, int(max_frames))).astype(np.int64))


def upto(steps: np.ndarray, step: float) -> int:
    """How many entries of the sorted ``steps`` are <= ``step`` (the prefix shown at that step)."""
    return int(np.searchsorted(steps, step, side="right"))


def snapshot_params(result, row: np.ndarray, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's named parameters at one snapshot row (flat values in ``history.param_names`` order).

    Entries a snapshot lacks (none, in a normal run) keep their fitted values.
    """
    from gradfit.models.base import unflatten_params

    flat = dict(result.flat_params)
    flat.update(zip(result.history.param_names, (float(v) for v in row)))
    return unflatten_params(result.model.specs, flat, dtype=dtype)

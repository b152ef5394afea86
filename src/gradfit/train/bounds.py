"""Bounds on parameters, honoured by projection.

After every update the parameters are clipped into their box (``lo <= p <= hi``), and the
gradient of an entry that sits on a bound and points out of the box is set to zero (the
projected gradient), so quasi-Newton methods such as L-BFGS keep working on the free entries
instead of pushing against the wall. The same projection serves every optimizer. It keeps the
parameters exactly the user's (no change of variables); a parameter that ends on a bound is
reported as such, since its uncertainty then means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from gradfit.errors import ModelError
from gradfit.models.base import Model


class Bounds:
    """Lower and upper limits per parameter entry (``-inf``/``inf`` where unbounded).

    Parameters
    ----------
    model : Model
    spec : mapping
        ``{"b": (0, None), "a[0]": (-1, 1)}``: a name (every entry of a vector parameter) or a
        flat entry name, to ``(lo, hi)`` where None means unbounded on that side.
    """

    def __init__(self, model: Model, spec: Mapping[str, tuple[float | None, float | None]] | None):
        self.model = model
        self.lower = {s.name: torch.full(s.shape, -math.inf, dtype=torch.float64) for s in model.specs}
        self.upper = {s.name: torch.full(s.shape, math.inf, dtype=torch.float64) for s in model.specs}
        self.given: dict[str, tuple[float, float]] = {}
        for key, pair in (spec or {}).items():
            name, index = model.entry(str(key))
            if name not in model.param_names:
                raise ModelError(
                    f"The bound on {key!r} names no parameter of the model {model.name!r}. "
                    f"Its parameters are: {', '.join(model.param_names)}."
                )
            lo, hi = _pair(key, pair)
            where = (...,) if index is None else index
            try:
                self.lower[name][where] = lo
                self.upper[name][where] = hi
            except IndexError:
                raise ModelError(
                    f"The bound on {key!r} is out of range: {name!r} has shape {model.spec(name).shape}."
                ) from None
            canonical = model.flat_key(str(key))  # a[0] and a[bmi] are one entry: say it one way
            if canonical in self.given:
                raise ModelError(f"The bound on {canonical!r} is given twice (as {key!r} too). Give it once.")
            self.given[canonical] = (lo, hi)

    def __bool__(self) -> bool:
        return bool(self.given)

    def check_start(self, params: Mapping[str, torch.Tensor]) -> None:
        """A ModelError naming every initial value outside its bounds."""
        bad = []
        bounded = set(self._bounded)  # no entry, NaN included, lies outside (-inf, inf): those need no look
        for name, value in params.items():
            if name not in bounded:
                continue
            v = value.detach().double().cpu()
            outside = (v < self.lower[name]) | (v > self.upper[name])
            for flat, out, x, lo, hi in zip(
                self.model.spec(name).flat_names(),
                outside.reshape(-1),
                v.reshape(-1),
                self.lower[name].reshape(-1),
                self.upper[name].reshape(-1),
            ):
                if out:
                    bad.append(f"{flat} = {float(x):g} is outside [{float(lo):g}, {float(hi):g}]")
        if bad:
            raise ModelError(
                "The initial values must lie within the bounds: "
                + "; ".join(bad)
                + ". Give initial values inside them with init=... (--init)."
            )

    def project(self, params: Mapping[str, torch.Tensor]) -> bool:
        """Clip every bounded parameter into its box, in place; True if anything was clipped."""
        clipped = False
        with torch.no_grad():
            for name in self._bounded:
                p = params[name]
                inside = torch.maximum(torch.minimum(p, self.upper[name].to(p)), self.lower[name].to(p))
                clipped |= bool((inside != p).any())
                p.copy_(inside)
        return clipped

    def mask_gradients(
        self, params: Mapping[str, torch.Tensor], names, grads: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The gradients with the entries that would push a parameter out of its box set to zero."""
        bounded = set(self._bounded)
        out = []
        for name, g in zip(names, grads):
            if name in bounded:
                p = params[name].detach()
                lo, hi = self.lower[name].to(p), self.upper[name].to(p)
                blocked = ((p <= lo) & (g > 0)) | ((p >= hi) & (g < 0))  # descent moves along -g
                g = torch.where(blocked, torch.zeros_like(g), g)
            out.append(g)
        return out

    def at_bounds(self, params: Mapping[str, torch.Tensor], rtol: float = 1e-9) -> list[str]:
        """Flat names of the entries that sit on a bound."""
        hits = []
        for name in self._bounded:
            p = params[name].detach()
            v = p.double().cpu().reshape(-1)
            # Compare with the bound as the parameter's dtype holds it: float32(0.6) is not 0.6.
            lo = self.lower[name].to(p.dtype).double().reshape(-1)
            hi = self.upper[name].to(p.dtype).double().reshape(-1)
            tol = rtol * torch.clamp(v.abs(), min=1.0)
            on = ((v - lo).abs() <= tol) | ((hi - v).abs() <= tol)
            hits += [n for n, hit in zip(self.model.spec(name).flat_names(), on) if hit]
        return hits

    def to_dict(self) -> dict[str, list[float | None]]:
        return {
            k: [None if math.isinf(lo) else lo, None if math.isinf(hi) else hi] for k, (lo, hi) in self.given.items()
        }

    @property
    def _bounded(self) -> list[str]:
        """The parameters with a finite bound on some entry (read each time: scaling sets the boxes after
        construction)."""
        return [n for n in self.lower if _finite_somewhere(self.lower[n]) or _finite_somewhere(self.upper[n])]


def _finite_somewhere(t: torch.Tensor) -> bool:
    """``bool(torch.isfinite(t).any())``; a few entries (scalar parameters) are read as Python floats, which is the
    same test without three tensor operations."""
    if t.numel() <= 64:
        return any(math.isfinite(v) for v in t.reshape(-1).tolist())
    return bool(torch.isfinite(t).any())


def _pair(key: str, pair) -> tuple[float, float]:
    try:
        lo, hi = pair
        lo = -math.inf if lo is None else float(lo)
        hi = math.inf if hi is None else float(hi)
    except (TypeError, ValueError):
        raise ModelError(
            f"The bound on {key!r} must be a pair (lo, hi) of numbers or None. Got {pair!r} instead."
        ) from None
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ModelError(f"The bound on {key!r} must have lo < hi. Got ({lo:g}, {hi:g}) instead.")
    return lo, hi

"""Starting values for the zoo's curves, guessed from the data.

Each curve is linear in some parameters once the others are fixed, so a guess tries a grid of
the nonlinear ones and solves for the linear ones by least squares, keeping the best. Guesses
look at no more than ``_GUESS_ROWS`` rows, in float64 on the CPU, and return ``{}`` (use the
defaults) when the data give nothing to go on.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradfit.rowpass import evenly_spaced

_GUESS_ROWS = 2000  # enough to place a curve; keeps a guess on 10^8 rows instant


def _guess_data(x: Tensor | None, y: Tensor | None) -> tuple[Tensor, Tensor] | None:
    """Up to ``_GUESS_ROWS`` evenly spaced finite rows as float64 CPU vectors, or None."""
    if x is None or y is None or y.ndim != 1 or x.shape[0] != y.shape[0]:
        return None
    x, y = x.detach(), y.detach()
    if x.shape[0] > _GUESS_ROWS:
        idx = evenly_spaced(x.shape[0], _GUESS_ROWS, x.device)
        x, y = x[idx], y[idx]
    t, v = x[:, 0].to("cpu", torch.float64), y.to("cpu", torch.float64)
    ok = torch.isfinite(t) & torch.isfinite(v)
    t, v = t[ok], v[ok]
    if t.numel() < 3 or bool(t.max() == t.min()):
        return None
    return t, v


def _best_fit(v: Tensor, basis: Tensor) -> tuple[int, Tensor] | None:
    """For ``basis`` ``(m, n, p)`` (m candidates), the candidate with the least residual and its coefficients."""
    usable = torch.isfinite(basis).all(dim=2).all(dim=1)
    usable &= torch.nan_to_num(basis.abs(), posinf=math.inf).amax(dim=(1, 2)) < 1e100
    basis = torch.where(usable[:, None, None], basis, torch.zeros((), dtype=basis.dtype))
    coef = torch.linalg.lstsq(basis, v.expand(basis.shape[0], -1).unsqueeze(-1)).solution
    resid = ((basis @ coef).squeeze(-1) - v).pow(2).sum(-1)
    resid = torch.where(usable & torch.isfinite(resid), resid, torch.full_like(resid, math.inf))
    best = int(torch.argmin(resid))
    return (best, coef[best, :, 0]) if math.isfinite(float(resid[best])) else None


def _finite(**values) -> dict[str, float]:
    out = {k: float(v) for k, v in values.items()}
    return out if all(math.isfinite(v) for v in out.values()) else {}


def guess_exponential(x, y):
    data = _guess_data(x, y)
    if data is None:
        return {}
    t, v = data
    span, mid = float(t.max() - t.min()), float(t.mean())
    rates = torch.logspace(math.log10(0.05), math.log10(20.0), 40, dtype=torch.float64) / span
    b = torch.cat([-rates.flip(0), rates])
    e = torch.exp(b[:, None] * (t - mid))  # centred so a shifted x range does not overflow
    best = _best_fit(v, torch.stack([e, torch.ones_like(e)], dim=2))
    if best is None:
        return {}
    i, (a, c) = best
    return _finite(a=a * math.exp(-float(b[i]) * mid), b=b[i], c=c)


def guess_sigmoid(x, y):
    data = _guess_data(x, y)
    if data is None:
        return {}
    t, v = data
    span = float(t.max() - t.min())
    mids = torch.quantile(t, torch.linspace(0.05, 0.95, 19, dtype=torch.float64))
    steep = torch.logspace(math.log10(0.5), math.log10(200.0), 16, dtype=torch.float64) / span
    k, x0 = steep.repeat_interleave(mids.numel()), mids.repeat(steep.numel())
    s = torch.sigmoid(k[:, None] * (t - x0[:, None]))
    best = _best_fit(v, torch.stack([s, torch.ones_like(s)], dim=2))
    if best is None:
        return {}
    i, (height, c) = best
    return _finite(L=height, k=k[i], x0=x0[i], c=c)


def guess_gaussian(x, y):
    data = _guess_data(x, y)
    if data is None:
        return {}
    t, v = data
    span = float(t.max() - t.min())
    extreme = t[torch.argmax((v - v.median()).abs())]  # a narrow peak may fall between grid centres
    centres = torch.cat([torch.linspace(float(t.min()), float(t.max()), 41, dtype=torch.float64), extreme[None]])
    widths = span * torch.logspace(math.log10(1 / 200), 0.0, 20, dtype=torch.float64)
    mu, sigma = centres.repeat(widths.numel()), widths.repeat_interleave(centres.numel())
    g = torch.exp(-((t - mu[:, None]) ** 2) / (2 * sigma[:, None] ** 2))
    best = _best_fit(v, torch.stack([g, torch.ones_like(g)], dim=2))
    if best is None:
        return {}
    i, (a, c) = best
    return _finite(a=a, mu=mu[i], sigma=sigma[i], c=c)


def guess_power(x, y, offset: bool):
    data = _guess_data(x, y)
    if data is None:
        return {}
    t, v = data
    keep = t > 0  # x**b is real for every b only there
    t, v = t[keep], v[keep]
    if t.numel() < 3:
        return {}
    b = torch.linspace(-4.0, 4.0, 161, dtype=torch.float64)
    b = b[b.abs() > 1e-9]  # b = 0 is a constant, indistinguishable from c
    p = t ** b[:, None]
    basis = torch.stack([p, torch.ones_like(p)], dim=2) if offset else p[:, :, None]
    best = _best_fit(v, basis)
    if best is None:
        return {}
    i, coef = best
    return _finite(a=coef[0], b=b[i], **({"c": coef[1]} if offset else {}))


def guess_sine(x, y):
    data = _guess_data(x, y)
    if data is None:
        return {}
    t, v = data
    span = float(t.max() - t.min())
    top = max(4.0, min(t.numel() / 2, 200.0))  # cycles across the range: about the Nyquist limit
    cycles = torch.arange(0.25, top + 0.25, 0.25, dtype=torch.float64)
    for _ in range(2):  # a coarse scan, then a finer one around its best
        w = 2 * math.pi * cycles / span
        wt = w[:, None] * t
        best = _best_fit(v, torch.stack([torch.sin(wt), torch.cos(wt), torch.ones_like(wt)], dim=2))
        if best is None:
            return {}
        i, (sin_coef, cos_coef, c) = best
        centre = float(cycles[i])
        cycles = torch.linspace(max(centre - 0.25, 0.05), centre + 0.25, 21, dtype=torch.float64)
    # a*sin(wx + phi) = a*cos(phi)*sin(wx) + a*sin(phi)*cos(wx)
    return _finite(a=torch.hypot(sin_coef, cos_coef), w=w[i], phi=torch.atan2(cos_coef, sin_coef), c=c)

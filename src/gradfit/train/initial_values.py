"""Initial values and fixed parameters: the user's ``init=`` and ``fix=`` applied to a model."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TypeGuard

import torch

from gradfit.aliases import closest
from gradfit.errors import ModelError
from gradfit.models.base import Model


def initial_params(
    model: Model,
    init: Mapping[str, object] | str | None,
    generator: torch.Generator,
    dtype: torch.dtype,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Starting values: the model's defaults (or data-informed guesses), overridden by ``init``.

    ``init`` maps a parameter name to a number (broadcast over its shape) or an array of its shape;
    an entry of a vector parameter is named ``"a[0]"``. ``init="random"`` draws every parameter
    from a seeded standard normal, as seed 002 does with ``torch.randn``.
    """
    if isinstance(init, str):
        if init.strip().lower() != "random":
            raise ModelError(
                f"The 'init' parameter must be a mapping of name to value or 'random'. Got {init!r} instead."
            )
        return {s.name: torch.randn(s.shape, generator=generator, dtype=torch.float64).to(dtype) for s in model.specs}
    params = model.init_params(generator, dtype, x=x, y=y)
    seen: dict[str, str] = {}
    for key, value in (init or {}).items():
        name, index = model.entry(str(key))
        _check_name(model, name, "init")
        canonical = model.flat_key(str(key))
        if canonical in seen:
            raise ModelError(
                f"The initial value of {canonical!r} is given twice (as {seen[canonical]!r} and {key!r}). Give it once."
            )
        seen[canonical] = str(key)
        spec = model.spec(name)
        if index is None and dtype == torch.float64 and _plain_number(value):
            # The common case, a Python number for a float64 fit, without the half-dozen tiny tensors the general
            # path makes per parameter (most of a small fit's set-up): the same checks and the same tensor.
            if not math.isfinite(value):
                raise ModelError(f"The initial value of {key!r} must be finite. Got {value!r} instead.")
            params[name] = torch.full(spec.shape, float(value), dtype=torch.float64)
            continue
        try:
            t = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError):
            raise ModelError(f"The initial value of {key!r} must be a number. Got {value!r} instead.") from None
        if not bool(torch.isfinite(t).all()):
            raise ModelError(f"The initial value of {key!r} must be finite. Got {value!r} instead.")
        _check_range(key, t, dtype)
        if index is not None:
            if len(index) != len(spec.shape) or any(not 0 <= i < d for i, d in zip(index, spec.shape)):
                raise ModelError(f"{key!r} is out of range: {name!r} has shape {spec.shape}.")
            if t.numel() != 1:
                raise ModelError(f"The initial value of {key!r} must be one number. Got {value!r} instead.")
            params[name][index] = t.to(dtype)
        elif t.numel() == 1 or tuple(t.shape) == spec.shape:
            params[name] = t.to(dtype).expand(spec.shape).clone()
        else:
            raise ModelError(
                f"The initial value of {name!r} must be one number or of shape {spec.shape}. Got shape {tuple(t.shape)}."
            )
    return params


def _plain_number(value: object) -> TypeGuard[float]:
    """A Python float, or an int that float64 holds exactly (so ``float(value)`` is ``torch.as_tensor``'s number)."""
    return type(value) is float or (type(value) is int and abs(value) <= 2**53)


def _check_range(key, t: torch.Tensor, dtype: torch.dtype) -> None:
    """A ConfigError when a value would not survive the fit's dtype: inf, or a number other than 0 that becomes 0."""
    cast = t.to(dtype)
    lost = ~torch.isfinite(cast) | ((cast == 0) & (t != 0))
    if not bool(lost.any()):
        return
    from gradfit.errors import ConfigError

    bad = float(t.reshape(-1)[lost.reshape(-1)][0])
    info = torch.finfo(dtype)
    name = str(dtype).replace("torch.", "")
    what = "overflows to inf" if abs(bad) > 1 else "rounds to 0"
    raise ConfigError(
        f"The initial value of {key!r}, {bad:g}, {what} in {name}, whose numbers range from "
        f"{info.tiny:.3g} to {info.max:.3g} in size. Give a start within that range, or fit in "
        f"float64: dtype='float64' (--dtype float64)."
    )


def fixed_names(model: Model, fix: Iterable[str] | str | None) -> frozenset[str]:
    """The parameters to hold at their initial values."""
    if fix is None:
        return frozenset()
    names = [f.strip() for f in fix.split(",")] if isinstance(fix, str) else [str(f) for f in fix]
    for name in names:
        _check_name(model, name, "fix")
    if set(names) >= set(model.param_names):
        raise ModelError(f"Every parameter is fixed ({', '.join(names)}): leave at least one free to fit.")
    return frozenset(names)


def _check_name(model: Model, name: str, option: str) -> None:
    if name in model.param_names:
        return
    close = closest(name, model.param_names)
    hint = f" Did you mean {close!r}?" if close else ""
    raise ModelError(
        f"The '{option}' option names {name!r}, which is not a parameter of the model {model.name!r}. "
        f"Its parameters are: {', '.join(model.param_names)}.{hint}"
    )


def finite(params: Mapping[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in params.values())

"""The checks on one value of a checkpoint, shared by :mod:`gradfit.train.checkpoint_schema`.

Each raises :class:`Damaged` naming the field (a dotted path such as ``optimizer.state.0.exp_avg``)
and what is wrong with it, in words a user can act on.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["Damaged", "field", "integer", "number", "tensor", "like", "finite_number", "describe", "first_line"]

_TENSOR_KINDS = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32, torch.int64)


class Damaged(Exception):
    """A field that fails its check: ``field`` (dotted path) and what is wrong with it."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def field(container: dict, key: str, kind: type | None = None, where: str | None = None) -> Any:
    where = where or key
    if not isinstance(container, dict) or key not in container:
        raise Damaged(where, "is missing")
    value = container[key]
    if kind is not None and not isinstance(value, kind):
        raise Damaged(where, f"is {describe(value)}, expected a {kind.__name__}")
    return value


def integer(container: dict, key: str, lo: int, hi: int | None = None, where: str | None = None) -> int:
    where = where or key
    value = field(container, key, where=where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Damaged(where, f"is {describe(value)}, expected a whole number")
    if value < lo or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"from {lo} to {hi}"
        raise Damaged(where, f"is {value}, expected a whole number {span}")
    return value


def number(container: dict, key: str, lo: float, where: str | None = None) -> float:
    where = where or key
    value = field(container, key, where=where)
    if not finite_number(value) or value < lo:
        raise Damaged(where, f"is {describe(value)}, expected a finite number >= {lo:g}")
    return float(value)


def tensor(
    value, where: str, shape: tuple | None = None, dtype: torch.dtype | None = None, finite: bool = True
) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        raise Damaged(where, f"is {describe(value)}, expected a tensor")
    if dtype is not None and value.dtype != dtype:
        raise Damaged(
            where, f"has dtype {str(value.dtype).replace('torch.', '')}, expected {str(dtype).replace('torch.', '')}"
        )
    if dtype is None and value.dtype not in _TENSOR_KINDS:
        raise Damaged(where, f"has dtype {str(value.dtype).replace('torch.', '')}, expected a float or integer dtype")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Damaged(where, f"has shape {tuple(value.shape)}, expected {tuple(shape)}")
    if finite and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise Damaged(where, "holds NaN or infinite values")
    return value


def like(value, reference, where: str, exact=()) -> None:
    """``value`` has ``reference``'s structure: the same keys, lengths and kinds of values (finite numbers).

    Keys named in ``exact``, and every bool, string and None, must also equal the reference's.
    """
    if isinstance(reference, dict):
        if not isinstance(value, dict):
            raise Damaged(where, f"is {describe(value)}, expected a dict")
        if set(value) != set(reference):
            missing, extra = sorted(set(reference) - set(value), key=str), sorted(set(value) - set(reference), key=str)
            what = (
                "lacks " + ", ".join(map(repr, missing)) if missing else "holds unknown " + ", ".join(map(repr, extra))
            )
            raise Damaged(where, what)
        for key in reference:
            if key in exact and value[key] != reference[key]:
                raise Damaged(f"{where}.{key}", f"is {value[key]!r}, expected {reference[key]!r}")
            like(value[key], reference[key], f"{where}.{key}", exact)
    elif isinstance(reference, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(reference):
            raise Damaged(where, f"is {describe(value)}, expected a list of {len(reference)}")
        for i, (v, r) in enumerate(zip(value, reference)):
            like(v, r, f"{where}.{i}", exact)
    elif reference is None or isinstance(reference, (bool, str)):  # switches and names: as this fit has them
        if type(value) is not type(reference) or value != reference:
            raise Damaged(where, f"is {describe(value)}, expected {reference!r}")
    elif isinstance(reference, (int, float)):
        if not finite_number(value):
            raise Damaged(where, f"is {describe(value)}, expected a finite number")
    elif isinstance(reference, torch.Tensor):
        tensor(value, where, shape=tuple(reference.shape))


def finite_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 20 else f"a string of {len(value)} characters"
    return f"a {type(value).__name__}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no message"

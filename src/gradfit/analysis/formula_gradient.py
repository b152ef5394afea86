"""Seed 002's first autograd lesson in one call: a formula's value and its gradient at a point.

``xt = tensor([3., 4., 10.]).requires_grad_(); y = (xt**2).sum(); y.backward(); xt.grad``
becomes ``gradient("sum(x**2)", {"x": [3, 4, 10]})``. The formula goes through the safe
compiler (:func:`gradfit.models.formula.compile_formula`); nothing the user wrote is executed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from gradfit.errors import ModelError

__all__ = ["gradient"]

Number = float | int
Values = Mapping[str, Number | Sequence[Number]]


def gradient(formula: str, values: Values) -> tuple[float, dict[str, float | list]]:
    """The value of ``formula`` at ``values`` and its gradient with respect to every name.

    Evaluation is in float64. Every name of the formula requires grad, as ``requires_grad_()``
    does in seed 002, and the gradient is ``torch.autograd`` of the value.

    Parameters
    ----------
    formula : str
        An expression such as ``"x**2"`` or ``"sum(x**2) + y"`` (see
        :func:`~gradfit.models.formula.compile_formula` for what is allowed).
    values : mapping of str to number or sequence of numbers
        A value for each name of the formula: a number, or a (nested) list for a vector.

    Returns
    -------
    value : float
        The formula's value, which must be a single number.
    grad : dict of str to float or list
        d value / d name, with the shape of the value given for that name (a float for a
        number, a list for a list), in the formula's order of names.

    Raises
    ------
    FormulaError
        The formula is not valid.
    ModelError
        A name has no value, a value is given for a name the formula does not use, a value is
        not numeric, or the formula's value is not a single number: ``backward()`` starts from
        a scalar, so wrap an elementwise formula in ``sum(...)`` (for ``sum(f(x))`` the gradient
        is ``f'(x)`` entry by entry).

    Examples
    --------
    >>> gradient("x**2", {"x": 3})
    (9.0, {'x': 6.0})
    >>> gradient("sum(x**2)", {"x": [3, 4, 10]})
    (125.0, {'x': [6.0, 8.0, 20.0]})
    """
    from gradfit.models.formula import compile_formula

    compiled = compile_formula(formula)
    text = formula.strip()
    names = compiled.names
    missing = [n for n in names if n not in values]
    if missing:
        raise ModelError(
            f"The formula {text!r} needs a value for {_names(missing)}. Give a value for each of its "
            f"names: {', '.join(names)}."
        )
    unknown = [n for n in values if n not in names]
    if unknown:
        raise ModelError(
            f"The formula {text!r} has no name {_names(unknown)}; its names are: {', '.join(names) or '(none)'}."
        )
    leaves = {n: _leaf(n, values[n]) for n in names}
    with torch.enable_grad():
        out = compiled.evaluate(leaves, dtype=torch.float64)
        if out.numel() != 1:
            raise ModelError(
                f"The formula {text!r} gives {out.numel()} values (shape {tuple(out.shape)}), not one number, so it "
                f"has no single gradient: backward() starts from a scalar, as seed 002 says. Wrap it in sum(...), "
                f"e.g. 'sum({text})': for an elementwise formula the gradient of the sum is the derivative of "
                f"each entry."
            )
        grads = torch.autograd.grad(out.reshape(()), list(leaves.values()), allow_unused=True) if leaves else ()
    # tolist() of a 0-d tensor (a scalar name) is a float, not the list torch's stubs say.
    result: dict[str, float | list] = {
        n: (torch.zeros_like(t) if g is None else g).tolist() for (n, t), g in zip(leaves.items(), grads)
    }
    return float(out.detach()), result


def _leaf(name: str, value) -> torch.Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ModelError(
            f"The value of {name!r} must be a number or a list of numbers. Got {value!r} instead."
        ) from None
    if t.numel() == 0:
        raise ModelError(f"The value of {name!r} is empty; give at least one number.")
    return t.clone().requires_grad_(True)


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)

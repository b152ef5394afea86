"""``gradfit grad``: seed 002's autograd lesson in one line.

``gradfit grad "x**2" --at 3`` prints ``value: 9`` and ``gradient: 6``;
``gradfit grad "sum(x**2)" --at 3,4,10`` prints ``value: 125`` and ``gradient: [6, 8, 20]``.
With several names each gets its own ``--at NAME=VALUES`` and its own ``d/dNAME: ...`` line.
A formula whose value is not one number is refused with the seed's explanation (``backward()``
needs a scalar) and the fix, ``sum(...)``, rather than silently summed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from gradfit.cli.common_options import Debug
from gradfit.cli.console import console, guarded

__all__ = ["format_number", "grad_command", "parse_at"]

_AT_HELP = (
    "Where to take the gradient: VALUES for a formula with one name (3, or 3,4,10 for a vector), "
    "else NAME=VALUES once per name (--at x=3 --at y=1,2)."
)


def grad_command(
    formula: Annotated[
        str, typer.Argument(help="An expression such as 'x**2' or 'sum(x**2) + y'.", show_default=False)
    ],
    at: Annotated[list[str] | None, typer.Option("--at", help=_AT_HELP, show_default=False)] = None,
    debug: Debug = False,
) -> None:
    """Print a formula's value and its gradient (torch.autograd, float64) at a point.

    The formula's value must be one number, as backward() needs; wrap an elementwise formula in sum(...).

    Exit status: 0 success, 2 bad input.
    """
    with guarded(debug):
        from gradfit.analysis.formula_gradient import gradient
        from gradfit.models.formula import compile_formula

        names = compile_formula(formula).names
        value, grad = gradient(formula, parse_at(at or [], names, formula))
        console.print(f"value: {format_number(value)}", markup=False, soft_wrap=True)
        if len(grad) == 1:
            console.print(f"gradient: {format_number(next(iter(grad.values())))}", markup=False, soft_wrap=True)
        elif not grad:
            console.print("gradient: none (the formula has no names to differentiate by)", markup=False)
        for name, g in grad.items() if len(grad) > 1 else ():
            console.print(f"d/d{name}: {format_number(g)}", markup=False, soft_wrap=True)


def parse_at(items: list[str], names: tuple[str, ...], formula: str = "") -> dict[str, float | list[float]]:
    """``["x=3", "y=1,2"]`` (or ``["3,4,10"]`` for a one-name formula) -> ``{"x": 3.0, "y": [1.0, 2.0]}``.

    Raises
    ------
    ConfigError
        An unnamed value for a formula with several names (or none), a name the formula does
        not have, a name given twice, a name left without a value, or text that is not a number.
    """
    from gradfit.errors import ConfigError

    shown = repr(formula.strip())
    listed = ", ".join(names) or "(none)"
    values: dict[str, float | list[float]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep:
            if len(names) != 1:
                if not names:
                    raise ConfigError(
                        f"--at {item}: the formula {shown} has no names, so it takes no --at; leave --at out."
                    )
                example = " ".join(f"--at {n}=VALUES" for n in names)
                raise ConfigError(
                    f"--at {item}: the formula {shown} has {len(names)} names ({listed}), so "
                    f"name the one each value is for: {example}."
                )
            name, text = names[0], item
        elif name not in names:
            raise ConfigError(f"--at {item}: the formula {shown} has no name {name!r}; its names are: {listed}.")
        if name in values:
            raise ConfigError(f"--at gives {name!r} twice; give each name one value (a vector as 1,2,3).")
        values[name] = _numbers(item, text)
    missing = [n for n in names if n not in values]
    if missing:
        example = " ".join(f"--at {n}=VALUES" for n in missing) if len(names) > 1 else "--at VALUES"
        raise ConfigError(
            f"No value for {', '.join(map(repr, missing))} in the formula {shown}: add {example} "
            f"(a number such as 3, or a vector such as 3,4,10)."
        )
    return values


def _numbers(item: str, text: str) -> float | list[float]:
    from gradfit.errors import ConfigError

    body = text.strip()
    vector = "," in body or body.startswith("[")
    parts = [p.strip() for p in body.strip("[]").split(",")]
    out = []
    for part in parts:
        try:
            out.append(float(part))
        except ValueError:
            got = f"{part!r} is not a number" if part else "a value is missing"
            raise ConfigError(
                f"--at {item}: {got}. Give numbers separated by commas, e.g. --at 3 or --at x=3,4,10."
            ) from None
    return out if vector else out[0]


def format_number(value) -> str:
    """``9.0`` -> ``9``, ``[6.0, 8.0]`` -> ``[6, 8]``: ``:g`` formatting, no float noise, no ``-0``."""
    if isinstance(value, list):
        return "[" + ", ".join(format_number(v) for v in value) + "]"
    return f"{float(value) + 0.0:g}"  # + 0.0 turns -0.0 into 0.0

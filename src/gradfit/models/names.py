"""Names that must not silently change meaning: a formula's names against the data's columns.

In a formula, names that are columns are inputs and every other name is a parameter. A
misspelt column (``bpp`` for ``bp``, ``BMI`` for ``bmi``) would therefore become a parameter
and the fit would still "succeed". So a formula name that is not a column but is *close* to one
is refused with "did you mean", unless the user declared it a parameter (``params=[...]`` /
``--param``, or an initial value in ``init=`` / ``--init``).

Close is the rule of :func:`gradfit.data.spelling.near_column`: the same name in another case,
one edit for names of 3+ characters, two edits when both have 7+; a parameter ``a`` is never
refused because of a column ``ab`` or ``x1``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence

from gradfit.aliases import closest, edit_distance
from gradfit.aliases import near_miss as near_column
from gradfit.errors import FormulaError, ModelError

__all__ = [
    "check_declared",
    "check_formula_names",
    "check_reserved_columns",
    "declared_params",
    "no_input_message",
    "written",
]

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ENTRY = re.compile(r"^(?P<name>[^\[\]]+)\[[^\[\]]*\]$")


def written(name: str) -> str:
    """How to write ``name`` in a formula: as is, or between backquotes."""
    return name if _IDENTIFIER.match(name) else f"`{name}`"


def declared_params(params: Iterable[str] | str | None, init: Mapping | str | None) -> frozenset[str]:
    """The names the user declared parameters: ``params`` and the names given initial values."""
    if params is None:
        names: list[str] = []
    elif isinstance(params, str):
        names = [p.strip() for p in params.split(",") if p.strip()]
    else:
        names = [str(p) for p in params]
    if isinstance(init, Mapping):
        for key in init:
            m = _ENTRY.match(str(key).strip())
            names.append(m["name"].strip() if m else str(key).strip())
    return frozenset(names)


def check_formula_names(
    formula, columns: Sequence[str], y: str | None, inputs: Sequence[str] | None, declared: Collection[str] = ()
) -> None:
    """Refuse formula names whose meaning would silently change; gather every one into one message.

    Parameters
    ----------
    formula : Formula
    columns : sequence of str
        The data's columns.
    y : str or None
        The target column.
    inputs : sequence of str or None
        The inputs given (``x=``), or None when the formula's names that are columns are the inputs.
    declared : collection of str
        Names declared parameters.

    Raises
    ------
    FormulaError
        For a name close to a column (see the module's docstring), the target used as a name, a
        column left out of ``x=`` but used in the formula, or a name both declared a parameter
        and given as an input; with a caret under the first.
    """
    columns = [str(c) for c in columns]
    candidates = [c for c in columns if c != y]
    given = set(inputs or ())
    problems: list[tuple[str, str]] = []
    for name in formula.names:
        declare = (
            f"declare it a parameter: --param {name} (library: params=[{name!r}]), or give it a start value "
            f"with --init {name}=VALUE"
        )
        if name in declared:
            if name in given:
                problems.append(
                    (
                        name,
                        f"'{name}' is declared a parameter but also given as an input (--x); "
                        f"remove it from one of them",
                    )
                )
            continue
        if inputs is not None and name in given:
            continue
        if name == y:
            others = [written(c) for c in candidates]
            hint = (
                f" Did you mean {' or '.join(others[:3])}?"
                if 0 < len(others) <= 3
                else f" The other columns are: {', '.join(others[:12])}{', ...' if len(others) > 12 else ''}."
                if others
                else ""
            )
            has_input = any(n in columns and n != y and n not in declared for n in formula.names) or bool(given)
            param = f" If '{name}' is meant to be a parameter (not the column), {declare}." if has_input else ""
            problems.append(
                (
                    name,
                    f"'{name}' is the target column (y), the values the model predicts, so the formula "
                    f"cannot also read it as an input.{hint}{param}".rstrip("."),
                )
            )
        elif name in columns:
            if inputs is not None:
                problems.append(
                    (
                        name,
                        f"'{name}' is a column of the data but not among the inputs given with --x "
                        f"({', '.join(inputs)}), so it would be fitted as a parameter. Add it to --x, "
                        f"or {declare}",
                    )
                )
        else:
            close = near_column(name, candidates)
            if close is not None:
                how = (
                    "differs only in case from"
                    if close.casefold() == name.casefold()
                    else f"is {'one edit' if edit_distance(name.casefold(), close.casefold()) == 1 else 'two edits'} from"
                )
                shown = f"'{close}'" if written(close) == close else written(close)
                problems.append(
                    (
                        name,
                        f"'{name}' is not a column, so it would be fitted as a parameter, but it "
                        f"{how} the column '{close}'. Did you mean {shown}? If '{name}' "
                        f"is meant to be a parameter, {declare}",
                    )
                )
    if problems:
        first = problems[0][0]
        offset, length = formula.spans.get(first, (None, 1))
        reason = " ".join(_sentence(text) for _, text in problems)
        prefix = f"The formula has {len(problems)} names that would change meaning: " if len(problems) > 1 else ""
        raise FormulaError(prefix + reason, formula=formula.text, offset=offset, length=length)


def _sentence(text: str) -> str:
    """``text`` ended as a sentence: a question keeps its question mark."""
    return text if text.endswith(("?", ".")) else f"{text}."


def check_reserved_columns(text: str, columns: Sequence[str], y: str | None) -> None:
    """Refuse a formula that writes a column's name where the formula language means something else.

    A column may be named like a constant (``pi``, ``e``) or a function (``exp``, ``sum``): written bare in
    the formula, the name means the constant or the function, never the column, which would silently
    change the model (``a*pi + b`` fits a constant) or give a confusing message (``exp is a function``). The
    column is written between backquotes (```pi```, which always means a name); the target column is left
    out, as it cannot be an input anyway. A function called with ``(...)`` is the function, as written.

    Raises
    ------
    FormulaError
        Naming the column, what the name means in a formula and how to write either meaning, with a
        caret under its first use.
    """
    from gradfit.models.formula import _mask_backquotes
    from gradfit.models.formula_functions import CONSTANTS, FUNCTIONS

    clashes = [str(c) for c in columns if str(c) != y and (str(c) in CONSTANTS or str(c) in FUNCTIONS)]
    if not clashes or not isinstance(text, str):
        return
    try:
        masked, _ = _mask_backquotes(text)  # same length as text: offsets stay the user's
    except FormulaError:
        return  # the compiler reports a bad backquote
    problems = []
    for name in clashes:
        for m in re.finditer(rf"(?<![\w.`]){re.escape(name)}(?![\w`])", masked):
            if name in FUNCTIONS and re.match(r"\s*\(", masked[m.end() :]):
                continue  # exp(x): the function, as written
            if name in CONSTANTS:
                meaning = (
                    f"the constant {name} = {CONSTANTS[name]:.6g}; to use the column write it between "
                    f"backquotes, `{name}`, and to mean the constant while a column has its name, write its "
                    f"value, {CONSTANTS[name]!r}"
                )
            else:
                meaning = f"the function {name}(...); to use the column, write it between backquotes: `{name}`"
            problems.append(
                (m.start(), name, f"'{name}' is a column of the data, but in a formula {name} is {meaning}")
            )
            break
    if problems:
        offset, name, text_ = problems[0]
        reason = " ".join(f"{t}." for _, _, t in problems)
        raise FormulaError(reason, formula=text, offset=offset, length=len(name))


def no_input_message(formula, columns: Sequence[str], y: str | None, declared: Collection[str] = ()) -> str:
    """Why a formula has no input, name by name, and what to write instead (for ``default_inputs``)."""
    from gradfit.models.formula_functions import CONSTANTS

    columns = [str(c) for c in columns]
    why = []
    for name in formula.names:
        if name == y:
            why.append(f"{name} is the target (y)")
        elif name in declared and name in columns:
            why.append(f"{name} is declared a parameter")
    used = [c for c in getattr(formula, "constants", ()) if c in CONSTANTS]
    if used:
        why.append(
            f"{', '.join(used)} {'is a constant' if len(used) == 1 else 'are constants'} of the formula language"
        )
    rest = [n for n in formula.names if n not in columns]
    if rest:
        why.append(
            f"{', '.join(rest)} {'is' if len(rest) == 1 else 'are'} not {'a column' if len(rest) == 1 else 'columns'}"
            f" and so {'a parameter' if len(rest) == 1 else 'parameters'}"
        )
    inputs = [c for c in columns if c != y]
    return (
        f"The formula {formula.text!r} has no input column: {'; '.join(why) or 'it names no column'}. A model "
        f"needs at least one input: write the formula with {'one of the columns ' + ', '.join(map(written, inputs)) if inputs else 'a column of the data'}"
        f" (or name the inputs with x=..., --x)."
    )


def check_declared(model, params: Iterable[str] | str | None) -> None:
    """Every name in ``params`` must be a parameter of the built ``model``; a ModelError otherwise."""
    names = sorted(declared_params(params, None))
    unknown = [n for n in names if n not in model.param_names]
    if not unknown:
        return
    kind = "occur in the formula as a parameter" if getattr(model, "formula", None) is not None else "name a parameter"
    hints = []
    for n in unknown:
        close = closest(n, model.param_names)
        hints.append(f"{n!r}" + (f" (did you mean {close!r}?)" if close else ""))
    raise ModelError(
        f"The 'params' option (--param) declares {', '.join(hints)}, which does not {kind} of the model "
        f"{model.name!r}. Its parameters are: {', '.join(model.param_names) or '(none)'}."
    )

"""The CLI's picture options read into what :func:`gradfit.plots.run_pictures.save_pictures` takes.

``--plot fit,loss`` becomes ``("fit", "loss")`` and ``--landscape "a[0],a[1]"`` the pair
``("a[0]", "a[1]")``, each checked, with a message naming the option when it cannot be read.
"""

from __future__ import annotations

from gradfit.errors import ConfigError
from gradfit.plots.run_pictures import KINDS, STATIC


def parse_kinds(text: str | None, default=STATIC) -> tuple[str, ...]:
    """``"fit,loss"`` -> ``("fit", "loss")``, checked against :data:`KINDS`; ``"all"`` for every kind."""
    if not text:
        return tuple(default)
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    if kinds == ("all",):
        return KINDS
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(
            f"Unknown picture kind(s) {', '.join(map(repr, unknown))}: choose from {', '.join(KINDS)} "
            f"(comma-separated), or all."
        )
    return kinds


def parse_pair(text: str | None, option: str = "--landscape") -> tuple[str, str] | None:
    """``"a[0],a[1]"`` -> ``("a[0]", "a[1]")``: two parameter names for a landscape."""
    if text is None:
        return None
    names = [n.strip() for n in _split_outside_brackets(text) if n.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(
            f"The '{option}' option takes two different parameter names separated by a comma, such as "
            f"a,b or a[0],a[1]. Got {text!r} instead."
        )
    return names[0], names[1]


def _split_outside_brackets(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]

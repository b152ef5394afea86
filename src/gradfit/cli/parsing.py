"""Parsing the CLI's compound options: ``--x``, ``--init``, ``--fix`` and ``--option``.

Values are parsed with ``float``/``int`` only (never ``eval``). Every mistake is a
:class:`~gradfit.errors.ConfigError` that quotes the option, the text received and the
expected form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from gradfit.errors import ConfigError

__all__ = ["parse_bounds", "parse_init", "parse_names", "parse_model_options", "split_top_level"]

# A parameter name, optionally with an entry by position or label: a, a[0], W[1,2], a[bmi], a[body mass]
_KEY = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(\[(?P<inner>[^\[\]=]*[^\[\]=\s][^\[\]=]*)\])?$")
_INDEX = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``[...]``: ``"W[0,1]=2,b=3"`` -> ``["W[0,1]=2", "b=3"]``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_names(texts: str | Sequence[str] | None, option: str) -> list[str] | None:
    """``"x1,x2"`` (or several such strings) -> ``["x1", "x2"]``; None when not given.

    Raises ConfigError for an empty name (``"x1,,x2"``) or a name given twice.
    """
    if texts is None:
        return None
    if isinstance(texts, str):
        texts = [texts]
    names: list[str] = []
    for text in texts:
        for part in text.split(","):
            name = part.strip()
            if not name:
                raise ConfigError(
                    f"The {option} option must be a comma-separated list of names, such as "
                    f"{option} x1,x2. Got {text!r} instead (an empty name)."
                )
            if name in names:
                raise ConfigError(f"The {option} option names {name!r} twice. Give each name once.")
            names.append(name)
    return names or None


def parse_init(texts: str | Sequence[str] | None) -> dict[str, float] | str | None:
    """``"a[0]=0.5,a[1]=0.75,b=2"`` -> ``{"a[0]": 0.5, "a[1]": 0.75, "b": 2.0}``.

    ``"random"`` is passed through (seeded standard-normal start). A name without an index is
    broadcast over the parameter's shape by the library. Repeating ``--init`` adds entries.

    Examples
    --------
    >>> parse_init("a[0]=0.5,a[1]=0.75,b=2")
    {'a[0]': 0.5, 'a[1]': 0.75, 'b': 2.0}
    """
    if texts is None:
        return None
    if isinstance(texts, str):
        texts = [texts]
    if len(texts) == 1 and texts[0].strip().lower() == "random":
        return "random"
    out: dict[str, float] = {}
    for text in texts:
        if text.strip().lower() == "random":
            raise ConfigError(
                "--init random cannot be combined with other --init values: give either "
                "--init random or NAME=VALUE pairs."
            )
        for item in split_top_level(text):
            text_key, sep, value = item.partition("=")
            key = _entry_key(text_key)
            if not sep or key is None or not value.strip():
                raise ConfigError(
                    f"The --init option must be NAME=VALUE pairs separated by commas, such as "
                    f"--init a[0]=0.5,a[1]=0.75,b=2 (or --init random). Got {item!r} in {text!r} instead."
                )
            number = _number(value.strip())
            if number is None or not math.isfinite(number):
                raise ConfigError(
                    f"The --init value of {key!r} must be a finite number. Got {value.strip()!r} instead."
                )
            if key in out:
                raise ConfigError(f"The --init option sets {key!r} twice. Give each parameter once.")
            out[key] = number
    return out


def parse_bounds(texts: str | Sequence[str] | None) -> dict[str, tuple[float | None, float | None]] | None:
    """``"b=0:,a[0]=-1:1"`` -> ``{"b": (0.0, None), "a[0]": (-1.0, 1.0)}``; an empty side is unbounded.

    Examples
    --------
    >>> parse_bounds(["b=0:", "c=:10"])
    {'b': (0.0, None), 'c': (None, 10.0)}
    """
    if texts is None:
        return None
    if isinstance(texts, str):
        texts = [texts]
    out: dict[str, tuple[float | None, float | None]] = {}
    for text in texts:
        for item in split_top_level(text):
            key, sep, value = item.partition("=")
            key = _entry_key(key) or ""
            lo, colon, hi = value.partition(":")
            if not sep or not colon or not key or not (lo.strip() or hi.strip()):
                raise ConfigError(
                    f"The --bound option must be NAME=LO:HI, such as --bound b=0:10, --bound b=0: "
                    f"(no upper limit) or --bound a[0]=:1. Got {item!r} instead."
                )
            pair = []
            for side in (lo.strip(), hi.strip()):
                number = _number(side) if side else None
                if side and (number is None or math.isnan(number)):
                    raise ConfigError(f"The --bound limits of {key!r} must be numbers. Got {side!r} instead.")
                pair.append(number)
            if key in out:
                raise ConfigError(f"The --bound option sets {key!r} twice. Give each parameter once.")
            out[key] = (pair[0], pair[1])
    return out or None


def parse_model_options(texts: Sequence[str] | None) -> dict[str, Any]:
    """``["degree=3", "hidden=32,32", "activation=tanh"]`` -> ``{"degree": 3, "hidden": (32, 32), "activation": "tanh"}``.

    A value is an int, a float, ``true``/``false``, a comma-separated tuple of numbers, or else
    kept as text. The model checks which keys it accepts.
    """
    out: dict[str, Any] = {}
    for text in texts or ():
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _IDENT.match(key) or not value:
            raise ConfigError(
                f"The --option option must be KEY=VALUE, such as --option degree=3 or "
                f"--option hidden=32,32. Got {text!r} instead."
            )
        if key in out:
            raise ConfigError(f"The --option option sets {key!r} twice. Give each key once.")
        out[key] = _option_value(value)
    return out


def _entry_key(text: str) -> str | None:
    """``" a[ 0 ] "`` -> ``"a[0]"``, ``"a[body mass]"`` kept as written; None when not NAME or NAME[ENTRY]."""
    text = text.strip()
    head, bracket, rest = text.partition("[")
    m = _KEY.match(head.strip() + bracket + rest)
    if not m:
        return None
    inner = m["inner"]
    if inner is None:
        return m["name"]
    inner = re.sub(r"\s+", "", inner) if _INDEX.match(inner) else inner.strip()
    return f"{m['name']}[{inner}]"


def _option_value(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if "," in value:
        items = [_option_value(v.strip()) for v in value.split(",")]
        return tuple(items) if all(isinstance(v, (int, float)) for v in items) else value
    number = _number(value)
    if number is None:
        return value
    return int(value) if re.fullmatch(r"[+-]?\d+", value) else number


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None

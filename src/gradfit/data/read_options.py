"""How to read a file, as the user says it: separator, decimal mark, thousands, encoding, header, dates.

``check_read`` validates the options once, at the door, and returns them in one normal form
(``read_table(path, **options)`` accepts both). Every mistake is a ConfigError naming the
option, what was given and what is accepted.

Examples
--------
>>> check_read({"sep": "semicolon", "decimal": ",", "dates": "when"})["dates"]
{'when': {'unit': 'auto', 'origin': None, 'dayfirst': None, 'format': None}}
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping

from gradfit.aliases import ALIASES, closest
from gradfit.data.dates import check_date_spec
from gradfit.errors import ConfigError

__all__ = ["READ_KEYS", "SEP_NAMES", "WHITESPACE", "check_read", "sep_name"]

WHITESPACE = "whitespace"  # runs of spaces and tabs, as in many instrument and NIST files
SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space", WHITESPACE: WHITESPACE}
_SEP_ALIASES = {
    "comma": ",",
    "semicolon": ";",
    "tab": "\t",
    "\\t": "\t",
    "pipe": "|",
    "space": " ",
    WHITESPACE: WHITESPACE,
    "ws": WHITESPACE,
    "\\s+": WHITESPACE,
}
_THOUSANDS = {",", ".", " ", "'", "\u00a0", "\u202f", "_"}
_DATE_DEFAULTS = {"date_unit": "unit", "date_origin": "origin", "dayfirst": "dayfirst", "date_format": "format"}
# Names people reach for out of habit (pandas, R, Excel).
READ_KEYS = ("sep", "decimal", "thousands", "encoding", "header", "dates", *_DATE_DEFAULTS)


def sep_name(sep: str) -> str:
    """``";"`` -> ``"';'"``, ``"\\t"`` -> ``"tab"``: a separator as messages name it."""
    return {",": "comma", "\t": "tab", WHITESPACE: "whitespace"}.get(sep, repr(sep))


def check_read(read: Mapping | None) -> dict:
    """The reading options, checked and in normal form.

    Parameters
    ----------
    read : mapping or None
        ``sep`` (one character, or ``"comma"``, ``"semicolon"``, ``"tab"``, ``"pipe"``, ``"space"``,
        ``"whitespace"`` for runs of blanks; default: detected), ``decimal`` (``"."`` or ``","``;
        default: detected), ``thousands`` (``","``, ``"."``, ``" "``, ``"'"``...; default: detected
        for grouped numbers), ``encoding`` (default ``"utf-8"``), ``header`` (True; False names the
        columns ``c1, c2, ...``), ``dates`` (column names, comma-separated text, or a dict of
        column -> ``{"unit", "origin", "dayfirst", "format"}``) and defaults for every date column:
        ``date_unit`` (``"auto"``, ``"seconds"``, ... ``"years"``), ``date_origin``, ``dayfirst``,
        ``date_format``.

    Returns
    -------
    dict
        ``sep``, ``decimal``, ``thousands``, ``encoding`` (None where not given), ``header`` and
        ``dates`` (a dict of column -> checked date options).

    Raises
    ------
    ConfigError
    """
    if read is None:
        read = {}
    if not isinstance(read, Mapping):
        raise ConfigError(
            f"The 'read' parameter must be a dict of reading options such as {{'sep': ';'}}. "
            f"Got {type(read).__name__} instead."
        )
    unknown = sorted(set(read) - set(READ_KEYS))
    if unknown:
        hints = []
        for key in unknown:
            close = ALIASES["read option"].get(str(key).lower()) or closest(key, READ_KEYS)
            hints.append(f"{key!r}" + (f" (did you mean {close!r}?)" if close else ""))
        raise ConfigError(f"Unknown reading option(s): {', '.join(hints)}. Known: {', '.join(READ_KEYS)}.")
    sep = _sep(read.get("sep"))
    decimal = read.get("decimal")
    if decimal not in (None, ".", ","):
        raise ConfigError(f"The decimal mark (decimal, --decimal) must be '.' or ','. Got {decimal!r} instead.")
    thousands = read.get("thousands")
    if thousands not in (None, *_THOUSANDS):
        raise ConfigError(
            f"The thousands separator (thousands, --thousands) must be one of "
            f"{', '.join(map(repr, sorted(_THOUSANDS)))}. Got {thousands!r} instead."
        )
    chars = {"sep": " " if sep == WHITESPACE else sep, "decimal": decimal, "thousands": thousands}
    for a, b in (("sep", "decimal"), ("sep", "thousands"), ("decimal", "thousands")):
        if chars[a] is not None and chars[a] == chars[b]:
            raise ConfigError(
                f"The {a} and the {b} are the same character ({read.get(a)!r}); a number could not "
                f"be told from the next field. Give different characters, e.g. sep=';' with decimal=','."
            )
    encoding = read.get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(str(encoding))
        except LookupError:
            raise ConfigError(
                f"Unknown encoding {encoding!r} (encoding, --encoding). Use e.g. 'utf-8', 'latin-1', "
                f"'cp1252' or 'utf-16'."
            ) from None
        encoding = str(encoding)
    header = read.get("header", True)
    if not isinstance(header, bool):
        raise ConfigError(f"The 'header' reading option must be True or False. Got {header!r} instead.")
    defaults = {spec_key: read[key] for key, spec_key in _DATE_DEFAULTS.items() if read.get(key) is not None}
    dates = _dates(read.get("dates"), defaults)
    return {
        "sep": sep,
        "decimal": decimal,
        "thousands": thousands,
        "encoding": encoding,
        "header": header,
        "dates": dates,
    }


def _sep(sep) -> str | None:
    if sep is None:
        return None
    if not isinstance(sep, str):
        raise ConfigError(f"The separator (sep, --sep) must be a character such as ';'. Got {sep!r} instead.")
    sep = _SEP_ALIASES.get(sep.lower(), sep)
    if sep == WHITESPACE:
        return sep
    if len(sep) != 1 or sep.isalnum() or sep in '"\r\n.':
        raise ConfigError(
            f"The separator (sep, --sep) must be one character such as ',', ';', '|' or tab "
            f"(or 'whitespace' for runs of blanks). Got {sep!r} instead."
        )
    return sep


def _dates(dates, defaults: dict) -> dict:
    if dates is None:
        return {}
    if isinstance(dates, str):
        dates = [d.strip() for d in dates.split(",") if d.strip()]
    if isinstance(dates, Mapping):
        items = list(dates.items())
    elif isinstance(dates, (list, tuple, set, frozenset)):
        items = [(d, None) for d in dates]
    else:
        raise ConfigError(
            f"The 'dates' reading option must name columns: a list such as ['when'], or a dict of "
            f"column -> options. Got {type(dates).__name__} instead."
        )
    out = {}
    for name, spec in items:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"The 'dates' reading option must name columns by their names. Got {name!r}.")
        if name in out:
            raise ConfigError(f"The 'dates' reading option names {name!r} twice. Name each column once.")
        if spec is not None and not isinstance(spec, Mapping):
            raise ConfigError(
                f"The date options of column {name!r} must be a dict such as {{'unit': 'days'}}. Got {spec!r} instead."
            )
        out[name] = check_date_spec(name, {**defaults, **(spec or {})})
    return out

"""The layout of a text table: separator, decimal mark and thousands separator, given or detected.

Detection looks at the first lines (at most 64 KiB). The separator is one that splits every
line into the same number (two or more) of fields: the one the file's extension implies
(``,`` for .csv, tab for .tsv) when it does, else ``;``, tab, ``|``, ``,``, then runs of blanks;
when several do, the one whose fields read best as numbers wins (so ``1,5;2,5`` is two
fields with decimal commas, not three). With a separator other than ``,``, numbers such as
``1,5`` and no ``1.5`` mean decimal commas, and ``1.234,5`` means ``.`` groups thousands (the
common European layout); ``1,234.5`` next to ``.`` decimals means ``,`` groups thousands.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

from gradfit.data.lines import any_field_size
from gradfit.data.read_options import WHITESPACE, sep_name
from gradfit.errors import DataError

__all__ = ["Dialect", "detect_dialect", "split_line"]

SAMPLE_BYTES = 64 * 1024
_MAX_LINES = 200
_CANDIDATES = (",", ";", "\t", "|")
_NUMBER = {  # a field as a number, for each decimal mark (thousands grouping allowed)
    ".": re.compile(r"^[+-]?(\d+|\d{1,3}(,\d{3})+)?(\.\d+)?([eE][+-]?\d+)?$"),
    ",": re.compile(r"^[+-]?(\d+|\d{1,3}(\.\d{3})+)?(,\d+)?([eE][+-]?\d+)?$"),
}
_COMMA_DECIMAL = re.compile(r"^[+-]?(\d+|\d{1,3}(\.\d{3})+),\d+([eE][+-]?\d+)?$")
_POINT_DECIMAL = re.compile(r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$")
_DOT_GROUPED = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")
_COMMA_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


@dataclass(frozen=True)
class Dialect:
    """How a text table is written; ``detected`` lists what was not given but found."""

    sep: str
    decimal: str = "."
    thousands: str | None = None
    detected: tuple[str, ...] = ()

    def note(self) -> str | None:
        """A sentence for the user when something other than the extension's layout was detected."""
        if not self.detected:
            return None
        marks = []
        if self.decimal == ",":
            marks.append("decimal commas")
        if self.thousands is not None:
            marks.append(f"{self.thousands!r} between thousands")
        layout = f"{sep_name(self.sep)}-separated" + (f" with {' and '.join(marks)}" if marks else "")
        flags = ", ".join(f"--{k}" for k in self.detected)
        return f"read as {layout} (detected; set {flags} to read it otherwise)"


def split_line(line: str, sep: str) -> list[str]:
    """One line's fields (quotes honoured)."""
    if sep == WHITESPACE:
        return line.split()
    with any_field_size():
        return next(csv.reader([line], delimiter=sep), [])


def detect_dialect(
    lines: list[str],
    default_sep: str,
    sep: str | None,
    decimal: str | None,
    thousands: str | None,
    header: bool,
    source: str,
) -> Dialect:
    """The dialect of a text table from its first ``lines`` (without line ends).

    ``sep``, ``decimal`` and ``thousands`` are the user's (None: detect). A given separator that
    splits no line is refused, naming the separator that would.
    """
    lines = [line for line in lines if line.strip()][:_MAX_LINES]
    detected = []
    if sep is None:
        sep = _detect_sep(lines, default_sep, decimal, header)
        if sep != default_sep:
            detected.append("sep")
    elif lines and all(_count_fields(line, sep) < 2 for line in lines):
        better = _detect_sep(lines, default_sep, decimal, header)
        fix = (
            f"it looks {sep_name(better)}-separated: use --sep {_flag(better)} or leave --sep out"
            if len(split_line(lines[0], better)) > 1
            else "leave --sep out if the file has one column"
        )
        raise DataError(
            f"{source}: the separator {sep_name(sep)} (--sep) splits nothing: no line of the first "
            f"{len(lines)} holds it (the first line is {lines[0][:60]!r}); {fix}."
        )
    data = lines[1:] if header else lines
    fields = [f.strip() for line in data for f in _some_fields(line, sep)]
    if decimal is None:
        decimal = "."
        if (
            sep != ","
            and any(_COMMA_DECIMAL.match(f) for f in fields)
            and not any(_POINT_DECIMAL.match(f) and not _DOT_GROUPED.match(f) for f in fields)
        ):
            decimal = ","
            detected.append("decimal")
    if thousands is None:
        # Grouped numbers (1.234,5 or 1,234.5) and no number that the grouping mark would misread.
        char, grouped, misread = (
            (".", _DOT_GROUPED, _POINT_DECIMAL) if decimal == "," else (",", _COMMA_GROUPED, _COMMA_DECIMAL)
        )
        if (
            sep != char
            and any(grouped.match(f) for f in fields)
            and not any(misread.match(f) and not grouped.match(f) for f in fields)
        ):
            thousands = char
            detected.append("thousands")
    return Dialect(sep, decimal, thousands, tuple(detected))


def _flag(sep: str) -> str:
    return {"\t": "tab", WHITESPACE: WHITESPACE}.get(sep, f"'{sep}'")


def _detect_sep(lines: list[str], default_sep: str, decimal: str | None, header: bool) -> str:
    order = [default_sep] + [c for c in _CANDIDATES if c != default_sep] + [WHITESPACE]
    scored = []
    for rank, sep in enumerate(order):
        width = _width(lines, sep)
        if width >= 2:
            scored.append((_numeric_share(lines[1:] if header else lines, sep, decimal), -rank, sep))
    if not scored:
        return default_sep
    if any(s[2] == default_sep for s in scored) and max(scored)[0] <= next(s[0] for s in scored if s[2] == default_sep):
        return default_sep
    return max(scored)[2]


def _width(lines: list[str], sep: str) -> int:
    """The number of fields every line has (a trailing empty field forgiven), or 0 if they differ."""
    widths = set()
    for line in lines:
        widths.add(_count_fields(line, sep))
        if len(widths) > 1:
            return 0
    return widths.pop() if widths else 0


def _count_fields(line: str, sep: str) -> int:
    """The number of fields of a line, a trailing empty one forgiven (a count, not a split, without quotes)."""
    if sep == WHITESPACE:
        return len(line.split())
    if '"' in line:
        fields = split_line(line, sep)
        return len(fields) - 1 if len(fields) > 1 and fields[-1] == "" else len(fields)
    n = line.count(sep) + 1
    return n - 1 if n > 1 and line.endswith(sep) else n


def _some_fields(line: str, sep: str) -> list[str]:
    """The fields in the first SAMPLE_BYTES characters of a line: enough to judge how numbers are written,
    however wide the table."""
    if len(line) <= SAMPLE_BYTES:
        return split_line(line, sep)
    return split_line(line[:SAMPLE_BYTES], sep)[:-1]  # the last may be cut


def _numeric_share(lines: list[str], sep: str, decimal: str | None) -> float:
    fields = [f.strip() for line in lines for f in _some_fields(line, sep) if f.strip()]
    if not fields:
        return 0.0
    marks = (decimal,) if decimal else (".", ",")
    # default: a decimal comma given for a comma-separated candidate leaves no mark to try (no numbers)
    best = max(
        (sum(1 for f in fields if _NUMBER[m].match(f)) for m in marks if not (m == "," and sep == ",")), default=0
    )
    return best / len(fields)

"""Near misses between a name and the data's columns: what "did you mean" suggests.

A name is close to a column when (compared case-insensitively, distance = insertions,
deletions, substitutions and swaps of neighbouring characters):

- it is the same name in another case (``BMI`` and ``bmi``), always;
- it is one edit away and the longer name has at least 3 characters (``bpp``/``bp``,
  ``presure``/``pressure``);
- it is two edits away and both names have at least 7 characters (``temprature``/``temperture``).

So names of one or two characters (``a``, ``k``, ``b1``, ``x0``) are never taken for a column
unless they differ from it only in case: a parameter ``a`` is not close to a column ``ab`` or
``x1``, nor ``b1`` to ``x1``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = ["edit_distance", "near_column", "suggest"]

# difflib compares a name with every column at ~20 µs each: past this many, only near misses are suggested.
_DIFFLIB_COLUMNS = 20_000


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Optimal string alignment distance between ``a`` and ``b``, or ``limit + 1`` once it exceeds ``limit``.

    Examples
    --------
    >>> edit_distance("bpp", "bp"), edit_distance("tmep", "temp"), edit_distance("a", "x1")
    (1, 1, 2)
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit and (not prev2 or min(prev) > limit):  # no later row can come back under the limit
            return limit + 1
        prev2, prev = prev, row
    return min(prev[-1], limit + 1)


def near_column(name: str, columns: Iterable[str]) -> str | None:
    """The column ``name`` is probably a misspelling of (the rule in the module's docstring), or None."""
    best, best_d = None, 3
    key = name.casefold()
    # Only columns whose length allows a match go through the loop below (a wide file has millions):
    # casefolding changes a name's length by at most three times, and a match is at most two edits.
    n = len(key)
    for column in [c for c in columns if len(c) <= n + 2 and 3 * len(c) >= n - 2]:
        if column == name:
            return None
        other = column.casefold()
        if other == key:
            return column
        longest, shortest = max(len(key), len(other)), min(len(key), len(other))
        allowed = 0 if longest < 3 else 2 if shortest >= 7 else 1
        if allowed == 0:
            continue
        d = edit_distance(key, other, allowed)
        if d <= allowed and d < best_d:
            best, best_d = column, d
    return best


def suggest(name: str, columns: Sequence[str]) -> str | None:
    """The column to suggest for an unknown column ``name``: a near miss, else difflib's closest."""
    close = near_column(name, columns)
    if close is not None or len(columns) > _DIFFLIB_COLUMNS:
        return close
    match = difflib.get_close_matches(name, list(columns), n=1)
    return match[0] if match else None

"""Near misses between a name and the data's columns: what "did you mean" suggests.

The rule lives in :mod:`gradfit.aliases` (one rule for every name gradfit suggests): a name is close
to a column when it is the same name in another case, one edit away (names of 3+ characters) or
two edits away (both of 7+). So names of one or two characters (``a``, ``k``, ``b1``, ``x0``) are
never taken for a column unless they differ from it only in case.

Examples
--------
>>> near_column("presure", ["pressure", "temp"]), near_column("a", ["ab", "x1"])
('pressure', None)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gradfit.aliases import closest, edit_distance, near_miss

__all__ = ["edit_distance", "near_column", "suggest"]


def near_column(name: str, columns: Iterable[str]) -> str | None:
    """The column ``name`` is probably a misspelling of (:func:`gradfit.aliases.near_miss`), or None."""
    return near_miss(name, columns)


def suggest(name: str, columns: Sequence[str]) -> str | None:
    """The column to suggest for an unknown column ``name``: a near miss, else difflib's closest."""
    return closest(name, columns)

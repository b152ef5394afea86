"""The near-miss rule: what counts as a misspelt column, tested both ways, and the edit distance against an oracle."""

from __future__ import annotations

import itertools
from functools import cache

import pytest

from gradfit.data.spelling import edit_distance, near_column, suggest


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance by its recursive definition (the oracle)."""

    @cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        best = min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
        if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
            best = min(best, d(i - 2, j - 2) + 1)
        return best

    return d(len(a), len(b))


def test_edit_distance_equals_the_recursive_definition_up_to_its_limit():
    words = ["", "a", "ab", "ba", "abc", "acb", "bp", "bpp", "temp", "tmep", "pressure", "presure", "x1", "ca", "abcd"]
    for a, b in itertools.product(words, repeat=2):
        for limit in (1, 2, 3):
            assert edit_distance(a, b, limit) == min(_osa(a, b), limit + 1), (a, b, limit)


@pytest.mark.parametrize(
    "name,column",
    [
        ("bpp", "bp"),  # the example: a letter too many
        ("BMI", "bmi"),  # case only, always
        ("Y", "y"),  # case only, even for one letter
        ("tmep", "temp"),  # neighbours swapped
        ("presure", "pressure"),  # a letter missing
        ("temprature", "temperture"),  # two edits, both names of 7+ characters
        ("bodymass", "body mass"),  # a column with a space, written without it
    ],
)
def test_close_names_are_misspellings(name, column):
    assert near_column(name, ["zzzzzz", column, "y"] if column != "y" else ["zzzzzz", column]) == column


@pytest.mark.parametrize(
    "name,columns",
    [
        ("a", ["x1", "ab", "y"]),  # a one-letter parameter is never taken for a column (but for its case)
        ("b", ["ab", "x", "y"]),
        ("k", ["x", "y"]),
        ("b1", ["x1", "y"]),  # NIST-style b1, b2 next to x1, x2
        ("x0", ["x", "x1"]),  # a sigmoid's midpoint next to its input
        ("mu", ["m", "y"]),
        ("tau", ["t", "y"]),  # two edits on short names
        ("sigma", ["sigma_y", "y"]),  # two edits, but 'sigma' is shorter than 7
        ("bp", ["bp"]),  # the column itself is not a misspelling
    ],
)
def test_short_or_distant_names_are_not(name, columns):
    assert near_column(name, columns) is None


def test_the_closest_column_wins_and_suggest_falls_back_to_difflib():
    assert near_column("pressur", ["pressure", "presser"]) == "pressure"
    assert near_column("Pressure", ["pressur", "pressure"]) == "pressure"  # case-only beats one edit
    assert suggest("X", ["x", "y"]) == "x"  # difflib alone would not suggest a different case
    assert suggest("weight_kg", ["weight", "y"]) == "weight"  # not near, but difflib's closest
    assert suggest("qqq", ["x", "y"]) is None

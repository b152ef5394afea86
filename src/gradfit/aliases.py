"""Names people type: the alias registry and the one "did you mean" rule.

Every name a user spells (optimizers, schedules, zoo models, losses, fit options, reading options,
columns, parameters, built-in datasets) is resolved here: an alias is looked up in :data:`ALIASES`,
and a name that matches nothing gets its suggestion from :func:`closest`, which holds the only
closeness rule in gradfit:

- the same name in another case (``BMI`` and ``bmi``), always;
- one edit away (insertions, deletions, substitutions and swaps of neighbouring characters,
  compared case-insensitively) when the longer name has at least 3 characters;
- two edits away when both names have at least 7 characters;
- failing those, difflib's closest name above ``cutoff`` (its similarity ratio), unless the names
  are too many to compare (a wide table's columns): a name of one or two characters is only ever
  matched this way, never by edits.

Examples
--------
>>> canonical("optimizer", "Marquardt"), canonical("schedule", "one-cycle")
('lm', 'onecycle')
>>> closest("adamm", ["sgd", "adam", "adamw"]), closest("BMI", ["age", "bmi"])
('adam', 'bmi')
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = ["ALIASES", "canonical", "closest", "edit_distance", "near_miss", "unknown_name"]

#: What people type, by the kind of name, mapped to gradfit's own name. Keys are lower case.
ALIASES: dict[str, dict[str, str]] = {
    "optimizer": {
        "gd": "sgd",
        "l-bfgs": "lbfgs",
        "l_bfgs": "lbfgs",
        "adam_w": "adamw",
        "rms": "rmsprop",
        "levenberg-marquardt": "lm",
        "levenberg_marquardt": "lm",
        "marquardt": "lm",
    },
    "schedule": {
        "none": "constant",
        "const": "constant",
        "exp": "exponential",
        "one-cycle": "onecycle",
        "one_cycle": "onecycle",
    },
    # Habits from other libraries (scikit-learn, Keras, scipy) for fit()'s options.
    "option": {
        "learning_rate": "lr",
        "max_steps": "steps",
        "n_steps": "steps",
        "iterations": "steps",
        "max_iter": "steps",
        "n_epochs": "epochs",
        "max_epochs": "epochs",
        "random_state": "seed",
    },
    "model": {
        "line": "linear",
        "quadratic": "poly2",
        "cubic": "poly3",
        "exp": "exponential",
        "sin": "sine",
        "gauss": "gaussian",
        "neural": "mlp",
    },
    # pandas' and csv's names for read={...}'s options.
    "read option": {
        "separator": "sep",
        "seperator": "sep",
        "delimiter": "sep",
        "delim": "sep",
        "delim_whitespace": "sep",
        "dec": "decimal",
        "decimal_mark": "decimal",
        "decimal_point": "decimal",
        "thousands_sep": "thousands",
        "fileencoding": "encoding",
        "parse_dates": "dates",
        "no_header": "header",
    },
}

# difflib compares a name with every candidate at ~20 µs each: past this many, only near misses are suggested.
_DIFFLIB_LIMIT = 20_000


def canonical(kind: str, name) -> str:
    """``name`` stripped and lower-cased, with an alias of ``kind`` replaced by the name it stands for.

    The result is not checked against the known names: the caller does that, and asks
    :func:`closest` for a suggestion when it is unknown."""
    key = str(name).strip().lower()
    return ALIASES.get(kind, {}).get(key, key)


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


def near_miss(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` is probably a misspelling of (by case or edits, the module's rule), else None.

    None too when ``name`` itself is a candidate. Of several near misses, the fewest edits win, then the
    first given."""
    best, best_d = None, 3
    key = name.casefold()
    # Only candidates whose length allows a match go through the loop below (a wide file has millions of
    # columns): casefolding changes a name's length by at most three times, and a match is at most two edits.
    n = len(key)
    for candidate in [c for c in candidates if len(c) <= n + 2 and 3 * len(c) >= n - 2]:
        if candidate == name:
            return None
        other = candidate.casefold()
        if other == key:
            return candidate
        longest, shortest = max(len(key), len(other)), min(len(key), len(other))
        allowed = 0 if longest < 3 else 2 if shortest >= 7 else 1
        if allowed == 0:
            continue
        d = edit_distance(key, other, allowed)
        if d <= allowed and d < best_d:
            best, best_d = candidate, d
    return best


def closest(name, candidates: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The candidate to suggest for the unknown ``name``: a near miss, else difflib's closest (ratio >= ``cutoff``).

    Examples
    --------
    >>> closest("hubber", ["mse", "huber"]), closest("lineer", ["linear", "rollercoaster"]), closest("q", ["mse"])
    ('huber', 'linear', None)
    """
    name = str(name)
    close = near_miss(name, candidates)
    if close is not None or len(candidates) > _DIFFLIB_LIMIT:
        return close
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return match[0] if match else None


def unknown_name(kind: str, name, known: Sequence[str], given=None) -> str:
    """The message for a ``kind`` (an option of fit()) that is none of ``known``, with the closest as a hint.

    Examples
    --------
    >>> unknown_name("optimizer", "sgdd", ["sgd", "adam"])
    "The 'optimizer' parameter must be one of sgd, adam. Got 'sgdd' instead. Did you mean 'sgd'?"
    """
    close = closest(name, known)
    hint = f" Did you mean {close!r}?" if close else ""
    given = name if given is None else given
    return f"The '{kind}' parameter must be one of {', '.join(known)}. Got {given!r} instead.{hint}"

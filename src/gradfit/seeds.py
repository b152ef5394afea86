"""The rule for seeds, shared by the built-in datasets and the fits.

A seed is a whole number from 0 to 2**64 - 1, the range ``torch.Generator.manual_seed`` takes.
A larger (or negative) one is refused with this rule in the message, not reduced modulo 2**64:
reduced, two different seeds would silently give the same draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfit.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_SEED", "SEED_RULE", "check_seed", "generator"]

MAX_SEED = 2**64 - 1
SEED_RULE = "a whole number from 0 to 2**64 - 1 (18446744073709551615)"


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` if it follows the rule, else a ConfigError that states it.

    Examples
    --------
    >>> check_seed(2**64 - 1)
    18446744073709551615
    >>> check_seed(2**64)
    Traceback (most recent call last):
    ...
    gradfit.errors.ConfigError: The 'seed' parameter must be a whole number from 0 to 2**64 - 1 (18446744073709551615). Got 18446744073709551616 instead.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"The '{name}' parameter must be {SEED_RULE}. Got {seed!r} instead.")
    return seed


def generator(seed) -> torch.Generator:
    """A new ``torch.Generator`` seeded with a checked ``seed``."""
    import torch  # here, so that the seed's rule can be read (gradfit.options, the CLI's help) without torch

    return torch.Generator().manual_seed(check_seed(seed))

"""The exceptions gradfit raises.

Every problem with what the user gave (data, model, options) is a ``GradfitError``
subclass whose message names the input, what was expected, what was received and
how to fix it. Only the CLI turns them into exit codes (``exit_code``).
"""

from __future__ import annotations


class GradfitError(Exception):
    """Base class of every error gradfit raises on purpose."""

    exit_code = 2


class DataError(GradfitError, ValueError):
    """The data cannot be used: unreadable file, missing column, NaN, text in a number column..."""


class ModelError(GradfitError, ValueError):
    """The model cannot be built or evaluated: unknown zoo name, bad parameter names or shapes..."""


class FormulaError(ModelError):
    """A formula string is not valid.

    Attributes
    ----------
    formula : str
        The formula as given.
    offset : int or None
        0-based character offset of the offending part, when known.
    length : int
        Number of characters of the offending part (for the caret line).
    """

    def __init__(self, message: str, formula: str = "", offset: int | None = None, length: int = 1):
        self.formula = formula
        self.offset = offset
        self.length = max(1, length)
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        if self.offset is None or not self.formula or "\n" in self.formula or "\r" in self.formula:
            return self.reason
        caret = " " * self.offset + "^" * min(self.length, max(1, len(self.formula) - self.offset))
        return f"{self.reason}\n    {self.formula}\n    {caret}"


class ConfigError(GradfitError, ValueError):
    """An option is out of range or options contradict each other."""


class MemoryBudgetError(GradfitError, ValueError):
    """A fit, picture or table would need more memory than the budget (see :mod:`gradfit.memory`).

    Raised before anything is allocated, with a message that lists what needs the memory and
    what to change.
    """


class DivergenceError(GradfitError, ArithmeticError):
    """The loss became NaN or infinite. Raised only when asked to (``raise_on_divergence``)."""

    exit_code = 1

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class DistributedError(GradfitError, RuntimeError):
    """The processes of one fit could not meet or stopped answering (see :mod:`gradfit.distributed`).

    A rendezvous that timed out, a peer that died, a collective past the group's timeout, or ranks that
    disagree on what they fit. The message names this rank, the address or the value in question and what
    to check. Exit code 1: the input may be fine, the run failed.
    """

    exit_code = 1


class GradfitWarning(UserWarning):
    """A fit runs, but something about it deserves attention (a learning rate above the stability limit...)."""

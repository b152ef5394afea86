"""Public names loaded on first use: the ``__getattr__`` and ``__dir__`` of gradfit's packages.

``gradfit``, ``gradfit.plots`` and ``gradfit.analysis`` list their public names as imports under
``TYPE_CHECKING`` (what type checkers and IDEs read) and as a name -> module map that the
functions made here load from when a name is first used (PEP 562). ``import gradfit`` and the
CLI's start-up then pay for torch and matplotlib only when a command needs them, and importing
one picture does not import every other.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["LazyModule", "lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], modules: Mapping[str, str] | None = None, public: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Make a package's ``__getattr__`` and ``__dir__``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : Mapping[str, str]
        Public name -> the module that defines it under that name.
    modules : Mapping[str, str], optional
        Public name -> a module exposed as the attribute itself (``gradfit.datasets``).
    public : Iterable[str]
        The package's ``__all__``, listed by ``dir()`` before anything is loaded.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)``, to assign at the package's top level.
    """
    modules = dict(modules or {})
    listed = set(public)

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif name in modules:
            value = importlib.import_module(modules[name])
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | listed)

    return __getattr__, __dir__


class LazyModule:
    """A module imported on its first attribute access: ``pd = LazyModule("pandas")`` at a module's top.

    The data readers use pandas for the general case but not for a plain numeric CSV file, and pandas
    costs a command-line fit about a quarter of a second to import; with this, the modules keep writing
    ``pd.read_csv(...)`` and pay only when they get there. Type checkers should see the real import
    (``if TYPE_CHECKING: import pandas as pd``).
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"

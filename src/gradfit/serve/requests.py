"""What the page asks for a run, checked, as :func:`gradfit.fit`'s arguments and as the ``gradfit fit`` command.

The page sends JSON: ``{"data": ID, "model": TEXT, "y": NAME, "x": [NAMES], "init": {NAME: NUMBER}, "fix":
[NAMES], "bounds": {NAME: [LO, HI]}, "options": {...}}``. Only the options a learner sets on the page are taken
(:data:`PAGE_OPTIONS`); paths, checkpoints and devices are not the page's to choose. Values are checked for their
JSON types here; :func:`gradfit.fit` checks their meaning and says what is wrong (the same messages as the CLI).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from gradfit.errors import ConfigError

#: fit() options the page may set, and their ``gradfit fit`` flags.
PAGE_OPTIONS = {
    "loss": "--loss",
    "optimizer": "--optimizer",
    "lr": "--lr",
    "momentum": "--momentum",
    "steps": "--steps",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "schedule": "--schedule",
    "val_split": "--val-split",
    "patience": "--patience",
    "target_loss": "--target-loss",
    "tol": "--tol",
    "max_time": "--max-time",
    "seed": "--seed",
    "dtype": "--dtype",
    "scale": "--scale",
}
#: The most steps one page run may take (a run is watched; a longer fit belongs on the command line).
MAX_STEPS = 1_000_000


@dataclass
class RunRequest:
    """A run the page asked for, checked for types."""

    data: str
    model: str
    y: str | None = None
    x: list[str] = field(default_factory=list)
    init: dict[str, float] = field(default_factory=dict)
    fix: list[str] = field(default_factory=list)
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def fit_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :func:`gradfit.fit` (besides the model and the data)."""
        arguments: dict[str, Any] = {"y": self.y, **self.options}
        if self.x:
            arguments["x"] = list(self.x)
        if self.init:
            arguments["init"] = dict(self.init)
        if self.fix:
            arguments["fix"] = list(self.fix)
        if self.bounds:
            arguments["bounds"] = dict(self.bounds)
        return arguments

    def command(self, data_name: str) -> str:
        """The ``gradfit fit`` command that runs the same fit (``data_name``: the file as the user knows it)."""
        words = ["gradfit", "fit", data_name, "--model", self.model]
        if self.y is not None:
            words += ["--y", self.y]
        if self.x:
            words += ["--x", ",".join(self.x)]
        if self.init:
            words += ["--init", ",".join(f"{name}={_number(v)}" for name, v in self.init.items())]
        if self.fix:
            words += ["--fix", ",".join(self.fix)]
        for name, (low, high) in self.bounds.items():
            words += [
                "--bound",
                f"{name}={'' if low is None else _number(low)}:{'' if high is None else _number(high)}",
            ]
        for name, value in self.options.items():
            flag = PAGE_OPTIONS[name]
            if isinstance(value, bool):
                if value:
                    words.append(flag)
            else:
                words += [flag, _number(value) if isinstance(value, (int, float)) else str(value)]
        return " ".join(shlex.quote(w) for w in words)


def _number(value: float | int) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def parse_request(body: Any) -> RunRequest:
    """The page's JSON as a :class:`RunRequest`; ConfigError naming the first field of the wrong kind."""
    if not isinstance(body, dict):
        raise ConfigError("A run needs its settings as a JSON object.")
    unknown = sorted(set(body) - {"data", "model", "y", "x", "init", "fix", "bounds", "options", "type", "paused"})
    if unknown:
        raise ConfigError(f"Unknown run setting(s): {', '.join(unknown)}.")
    data = _text(body.get("data"), "data", "a dataset: upload a file or pick a built-in one")
    model = _text(body.get("model"), "model", "a zoo name or a formula")
    y = body.get("y")
    if y is not None:
        y = _text(y, "y", "the target column")
    x = _names(body.get("x"), "x")
    fix = _names(body.get("fix"), "fix")
    init = {name: _finite(v, f"init of {name}") for name, v in _mapping(body.get("init"), "init").items()}
    bounds = {name: _bound(v, name) for name, v in _mapping(body.get("bounds"), "bounds").items()}
    options = _options(_mapping(body.get("options"), "options"))
    return RunRequest(data, model, y, x, init, fix, bounds, options)


def _options(given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(PAGE_OPTIONS))
    if unknown:
        raise ConfigError(f"The page cannot set {', '.join(unknown)}; it sets {', '.join(PAGE_OPTIONS)}.")
    options = {}
    for name, value in given.items():
        if value is None or value == "":
            continue  # the default
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number.")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{name} must be a number, a word or true/false, not {type(value).__name__}.")
        options[name] = value
    steps = options.get("steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > MAX_STEPS:
        raise ConfigError(
            f"steps={steps}: the playground runs at most {MAX_STEPS:,} steps; run longer fits with `gradfit fit`."
        )
    return options


def _text(value: Any, name: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"'{name}' is missing: give {what}.")
    return value.strip()


def _names(value: Any, name: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"'{name}' must be a list of names.")
    return [v for v in value if v]


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"'{name}' must be an object of names to values.")
    return value


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"The {name} must be a finite number; got {value!r}.")
    return float(value)


def _bound(value: Any, name: str) -> tuple[float | None, float | None]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"The bounds of {name} must be [low, high] (null for no limit).")
    low, high = (None if v is None else _finite(v, f"bound of {name}") for v in value)
    return low, high

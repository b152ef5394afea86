"""The oracle shared by the generated CLI corpora (tests/test_cli_corpus.py, tests/test_cli_corpus_batched.py).

A command run with generated options must end in one of the documented ways: exit 0 or 1 with its files written
whole (strict JSON, no temporary files), or exit 2 with a one-paragraph message that names an option given and
nothing written; never an "internal error" or a traceback. The commands run in-process (typer's runner).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from hypothesis import HealthCheck
from typer.testing import CliRunner

from gradfit.cli.app import app

runner = CliRunner()

BIG = 2**63
#: Numbers inside, at and beyond the range of a numeric option, and nonsense.
NUMBERS = ["0", "-1", "1e-12", "0.01", "0.5", "1", "3", "1e10", "1e400", "nan", "inf", "-inf", "abc"]

#: hypothesis settings of the corpora: reproducible, no deadline (a run may take a second).
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def strict_json(text: str):
    """``json.loads`` that fails on the non-JSON tokens NaN, Infinity and -Infinity."""

    def refuse(token):
        raise AssertionError(f"the JSON holds the non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def invoke_checked(
    args: list[str],
    *,
    out: Path,
    tmp: Path,
    given: Iterable[str],
    names: Callable[[str], list[str]],
    refused: str = "",
):
    """Run ``gradfit ARGS --out OUT`` and assert the common part of the oracle; return the runner's result and the
    command line as shown in a failure. ``names(flag)``: the spellings of an option its message may use;
    ``refused``: the fragment of the message for data refused whatever the options."""
    res = runner.invoke(app, [*args, "--out", str(out)], catch_exceptions=True)
    shown = f"gradfit {' '.join(args)}\nexit {res.exit_code}\n{res.output}"
    assert res.exception is None or isinstance(res.exception, SystemExit), (shown, repr(res.exception))
    assert res.exit_code in (0, 1, 2), shown
    assert "internal error" not in res.output and "Traceback" not in res.output, shown
    left = [p for p in tmp.rglob("*") if p.name.startswith(".tmp")]
    assert not left, (shown, left)
    if res.exit_code == 2:
        assert not out.exists() or not any(out.iterdir()), (shown, sorted(p.name for p in out.iterdir()))
        message = res.stderr.lower()
        assert message.strip(), shown
        named = [f for f in given if any(n.lower() in message for n in names(f))]
        assert named or (refused and refused.lower() in message), f"the message names no option given:\n{shown}"
    return res, shown

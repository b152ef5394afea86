"""A saved run's schema: what its ``result.json`` must hold, and the record that ties its files together.

``result.json`` is written last (:func:`gradfit.outputs.save_run`), and its ``run`` field names
the run and seals the files written before it::

    "run": {"id": "5f0c2a9e13b7d460",
            "files": {"history.csv": {"bytes": 5190, "sha256": "9b1f..."},
                      "timings.csv": {"bytes": 1302, "sha256": "e04c..."}}}

:func:`gradfit.outputs.load_run` (and so ``gradfit plot``, ``gradfit steps`` and ``gradfit
predict``) checks every file named there before reading it: a ``history.csv`` cut short, edited,
or left by another run that wrote into the same folder is refused, naming the file, instead of
being drawn as this run's. The id is new for every run (a resumed fit is a new run) and is also
written into the run's checkpoint and its list of files (``.gradfit-run.json``), so each file of
a run says which run it belongs to. It is the one part of ``result.json``, with ``timings``, that
differs when the same fit is repeated.

:func:`read_result` reads ``result.json`` itself and checks the fields every reader relies on,
so a damaged or hand-edited file is refused with a message instead of failing deep in a picture.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from gradfit.errors import DataError

__all__ = ["RUN_FIELD", "new_run_id", "file_digest", "run_record", "check_run_files", "with_run_record", "read_result"]

#: The field of result.json that holds the record.
RUN_FIELD = "run"
_READ = 1 << 20


def new_run_id() -> str:
    """A new run's id: 16 random hex digits.

    Examples
    --------
    >>> len(new_run_id()), new_run_id() != new_run_id()
    (16, True)
    """
    return secrets.token_hex(8)


def file_digest(path: str | os.PathLike) -> dict:
    """``{"bytes": size, "sha256": hex digest}`` of a file, read a megabyte at a time."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(_READ):
            h.update(block)
            size += len(block)
    return {"bytes": size, "sha256": h.hexdigest()}


def run_record(run_id: str, files: Mapping[str, str | os.PathLike]) -> dict:
    """The ``run`` field of result.json: ``run_id`` and the digest of each file, by its name in the run's folder.

    ``files`` maps the name the file has (or will have) in the folder to where its bytes are now
    (a temporary file about to be renamed, say).
    """
    return {"id": run_id, "files": {name: file_digest(path) for name, path in sorted(files.items())}}


def check_run_files(folder: str | os.PathLike, record, names=None) -> None:
    """Raise DataError if a file of the run in ``folder`` is not the one its ``record`` describes.

    Only files that exist are checked (a run whose history was deleted still loads without it);
    ``names`` limits the check to those files. A ``record`` that is not a run record (an older run
    has none) checks nothing.
    """
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        return
    folder = Path(folder)
    for name, expected in files.items():
        if names is not None and name not in names:
            continue
        path = folder / str(name)
        if not isinstance(expected, dict) or Path(str(name)).name != str(name) or not path.is_file():
            continue
        found = file_digest(path)
        if found == {"bytes": expected.get("bytes"), "sha256": expected.get("sha256")}:
            continue
        how = (
            f"it has {found['bytes']:,} bytes where the run wrote {expected.get('bytes'):,}"
            if isinstance(expected.get("bytes"), int) and found["bytes"] != expected["bytes"]
            else "its content differs from what the run wrote (same size)"
        )
        short = " (cut short)" if isinstance(expected.get("bytes"), int) and found["bytes"] < expected["bytes"] else ""
        raise DataError(
            f"{str(path)!r} is not the file run {record.get('id')!r} saved in {str(folder)!r}: {how}"
            f"{short}. It was changed after the run was saved, or written by another run. Fit again to "
            f"write the run afresh, or restore the file."
        )


# -- result.json -------------------------------------------------------------------------------------

# The type of a field of result.json, or its types as isinstance() takes them.
_FieldKind = type | tuple[type, ...]

#: result.json's fields that every reader relies on, and the kinds of value they hold.
_REQUIRED: dict[str, _FieldKind]
_OPTIONAL: dict[str, _FieldKind]
_REQUIRED = {"params": dict, "model": dict, "steps": int, "epochs": (int, float), "stop_reason": str, "message": str}
_OPTIONAL = {
    "diagnostics": dict,
    "config": dict,
    "data": dict,
    "bounds": dict,
    "init_params": dict,
    "param_shapes": dict,
    "timings": dict,
    "fixed": list,
    "metrics": (dict, type(None)),
    "uncertainty": (dict, type(None)),
    "report": (dict, type(None)),
    "best_step": (int, type(None)),
    RUN_FIELD: dict,
}


def with_run_record(text: str, record: dict) -> str:
    """``text`` (a result's JSON, as :meth:`FitResult.to_json` writes it) with ``record`` as its last field."""
    data = json.loads(text)
    data[RUN_FIELD] = record
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def read_result(path: str | os.PathLike) -> tuple[str, dict]:
    """The text of a run's ``result.json`` and its fields, checked; DataError naming what is wrong.

    A file that is not UTF-8 JSON, is nested deeper than Python's parser goes, or lacks or
    mistypes a field that readers rely on is refused here, before anything is drawn from it.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except RecursionError:
        raise DataError(
            f"{str(path)!r} is not a gradfit result: its JSON is nested too deeply to read. Fit again to "
            f"write the run afresh."
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"{str(path)!r} is not a gradfit result: it is not valid JSON ({exc}). Fit again to write the run afresh."
        ) from None
    problem = _result_problem(data)
    if problem:
        raise DataError(
            f"{str(path)!r} is not a gradfit result this gradfit can read: {problem}. Fit again to write "
            f"the run afresh."
        )
    return text, data


def _result_problem(data) -> str | None:
    from gradfit.train.result import SCHEMA

    if not isinstance(data, dict):
        return f"it holds {type(data).__name__} instead of an object"
    if data.get("schema", SCHEMA) != SCHEMA:
        return f"its schema is {data.get('schema')!r}, expected {SCHEMA!r}"
    for name in _REQUIRED:
        if name not in data:
            return f"the field {name!r} is missing"
    for name, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if name in data and (not isinstance(data[name], kind) or isinstance(data[name], bool) and kind is int):
            return f"the field {name!r} is {_kind(data[name])}"
    bad = [k for k, v in data["params"].items() if isinstance(v, bool) or not isinstance(v, (int, float, str))]
    if bad:
        return f"the parameter {bad[0]!r} is {_kind(data['params'][bad[0]])}, not a number"
    for name in ("x", "notes"):
        value = data.get("data", {}).get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"the field 'data.{name}' is {_kind(value)}, expected a list of names"
    return None


def _kind(value) -> str:
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "an array"
    return "null" if value is None else repr(value) if not isinstance(value, str) else repr(value[:40])

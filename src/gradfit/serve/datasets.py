"""The playground's data: uploaded files and the built-in datasets, read as the CLI reads them.

An upload is written under a folder the server owns (a fresh temporary folder, removed when the server stops),
named by an id the server makes: the page only ever names a dataset by that id or by ``builtin:NAME``, never by a
path. Reading goes through :func:`gradfit.data.io.open_data`, so a file gets the same checks and the same
messages as ``gradfit fit`` gives it (a bad value names its line), with the server's file name replaced by the
name the user uploaded.
"""

from __future__ import annotations

import math
import re
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradfit.errors import DataError

#: Uploads larger than this are refused (bytes); ``gradfit serve --max-upload-mb`` changes it.
MAX_UPLOAD_BYTES = 50 * 2**20
#: Datasets kept at once; the oldest upload goes when a new one would pass it.
MAX_DATASETS = 32
#: The built-in datasets the page offers, with a line on each.
BUILTIN = {
    "linear": "The seeds' noisy line: y = 3x + 2 + noise, 100 rows (seeds 000 and 001).",
    "rollercoaster": "The seeds' roller coaster: speed against time, a noisy parabola, 20 rows (seed 002).",
    "blobs": "Two classes of points in the plane, for a classifier (loss bce).",
}
#: File endings the page accepts, as the CLI reads them.
ENDINGS = (".csv", ".txt", ".tsv", ".tab", ".parquet", ".pq")
PREVIEW_ROWS = 8


@dataclass
class Table:
    """A dataset ready to fit: the DataFrame, where it came from, and what the page shows of it."""

    id: str
    name: str  # what the user knows it by: the uploaded file's name, or builtin:NAME
    frame: Any
    notes: list[str]
    source: str = ""  # what a fit reads: the server's copy of the file, or builtin:NAME

    def __post_init__(self) -> None:
        self.source = self.source or self.name

    def renamed(self, text: str) -> str:
        """``text`` (a message) with the server's copy of the file named as the user knows it."""
        return text if self.source == self.name else _renamed(text, self.source, self.name)

    def summary(self) -> dict[str, Any]:
        """Columns (with which are numeric), the row count and the first rows, for the page."""
        frame = self.frame
        numeric = [str(c) for c in frame.columns if frame[c].dtype.kind in "biuf"]
        head = frame.head(PREVIEW_ROWS)
        rows = [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)]
        return {
            "id": self.id,
            "name": self.name,
            "rows": len(frame),
            "columns": [str(c) for c in frame.columns],
            "numeric": numeric,
            "head": rows,
            "notes": self.notes,
        }


def too_large(size: int, limit: int, name: str | None = None) -> str:
    """Why an upload of ``size`` bytes is refused, and what to do instead."""
    shown = Path(name or "").name or "The file"
    return (
        f"{shown}: the upload is {size / 2**20:.1f} MB; the playground takes files up to {limit / 2**20:.0f} MB. "
        f"Fit a larger file with `gradfit fit FILE ...` on the command line, or start the playground with a "
        "larger --max-upload-mb."
    )


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    return str(value)


class Datasets:
    """The datasets of one server: uploads in a temporary folder of its own, and the built-in ones."""

    def __init__(self, max_bytes: int = MAX_UPLOAD_BYTES):
        self.max_bytes = max_bytes
        self.folder = Path(tempfile.mkdtemp(prefix="gradfit-serve-"))
        self._tables: dict[str, Table] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def builtin(self, name: str) -> Table:
        key = f"builtin:{name}"
        with self._lock:
            if key in self._tables:
                return self._tables[key]
        if name not in BUILTIN:
            raise DataError(f"Unknown built-in dataset {name!r}. Known names: {', '.join(BUILTIN)}.")
        frame, notes = _read(key, key)
        table = Table(key, key, frame, notes)
        with self._lock:
            self._tables[key] = table
        return table

    def upload(self, filename: str, content: bytes) -> Table:
        """Keep ``content`` (the bytes of a file the user named ``filename``) and read it; DataError if it is
        too large, of an unknown kind, or unreadable (then nothing is kept)."""
        name = Path(filename or "data.csv").name or "data.csv"
        if len(content) > self.max_bytes:
            raise DataError(too_large(len(content), self.max_bytes, name))
        ending = Path(name).suffix.lower()
        if ending not in ENDINGS:
            raise DataError(
                f"{name}: the playground reads {', '.join(ENDINGS)} files. Save the table as CSV and upload that."
            )
        id = secrets.token_hex(8)
        path = self.folder / f"{id}{ending}"
        path.write_bytes(content)
        try:
            frame, notes = _read(str(path), name)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        table = Table(id, name, frame, notes, str(path))
        with self._lock:
            self._tables[id] = table
            uploads = [key for key in self._tables if not key.startswith("builtin:")]
            for old in uploads[: max(0, len(uploads) - MAX_DATASETS)]:
                self._tables.pop(old)
                for leftover in self.folder.glob(f"{old}.*"):
                    leftover.unlink(missing_ok=True)
        return table

    def get(self, id: str) -> Table:
        if id.startswith("builtin:"):
            return self.builtin(id[len("builtin:") :])
        with self._lock:
            table = self._tables.get(id)
        if table is None:
            raise DataError("That dataset is no longer on the server (it restarted, or many files came after it). "
                            "Upload the file again.")  # fmt: skip
        return table


def _read(path: str, name: str) -> tuple[Any, list[str]]:
    """The table at ``path`` as ``gradfit fit`` reads it, messages naming ``name`` instead of the server's path."""
    from gradfit.data.io import open_data
    from gradfit.data.plain_csv import NumberTable

    try:
        frame, _, _, notes = open_data(path)
    except DataError as err:
        raise DataError(_renamed(str(err), path, name)) from None
    if isinstance(frame, NumberTable):  # a plain numeric CSV comes as named float64 columns
        import pandas as pd

        table, frame = frame, pd.DataFrame(frame.values, columns=frame.columns)
        frame.attrs.update(table.attrs)  # where it was read from, its row labels: as the pandas path records
    return frame, [_renamed(note, path, name) for note in notes]


def _renamed(text: str, path: str, name: str) -> str:
    return re.sub(re.escape(str(Path(path).resolve())) + "|" + re.escape(path), lambda _: name, text)

"""Which line of a text file a data row is on, as an editor numbers lines.

A row's position is not its line less the header: pandas skips blank lines (before the header
and between rows), and a quoted field may span several lines. :class:`LineNumbers` finds the
first line of the rows a message names by reading the file again with the same rules (the csv
module's quoting, blank or whitespace-only lines skipped), only when a message needs them and
only as far as the last row named: reading a file never pays for it.

``row_numbers(first, positions)`` numbers positions for messages whether ``first`` is a plain
offset (a DataFrame, or a Parquet file: row 0 is row 0) or a :class:`LineNumbers`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["LineNumbers", "any_field_size", "records", "row_numbers"]


class LineNumbers:
    """The line on which each data row of a text table starts, counted on demand.

    Parameters
    ----------
    path : Path
        The file (for messages and equality only).
    open_binary : callable
        Opens the file's (decompressed) bytes.
    encoding : str
        Its text encoding.
    sep : str or None
        The separator (for the quoting rules); None for runs of blanks.
    header : bool
        Whether the first non-blank line is a header.
    """

    def __init__(
        self,
        path: Path,
        open_binary: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
        encoding: str,
        sep: str | None,
        header: bool,
    ):
        self.path, self.open_binary, self.encoding, self.sep, self.header = path, open_binary, encoding, sep, header
        self._starts: list[int] = []  # the first line of rows 0, 1, ... as far as read so far
        self._done = False

    def __call__(self, positions: Iterable[int]) -> list[int]:
        """The 1-based line of each row position (counted from the first data row, 0)."""
        wanted = [int(p) for p in positions]
        if wanted and max(wanted) >= len(self._starts) and not self._done:
            self._scan(max(wanted))
        # Past the end of the file (rows the reader made up, which should not happen): count on from the last line.
        last = self._starts[-1] if self._starts else (2 if self.header else 1)
        return [self._starts[p] if 0 <= p < len(self._starts) else last + p - len(self._starts) + 1 for p in wanted]

    def __deepcopy__(self, memo) -> LineNumbers:
        # pandas deep-copies a frame's attrs; the numbering of one file is the same for every copy.
        return self

    def __repr__(self) -> str:
        return f"LineNumbers({str(self.path)!r})"

    def _scan(self, last: int) -> None:
        starts: list[int] = []
        with self.open_binary() as raw:
            text = io.TextIOWrapper(raw, encoding=self.encoding, errors="replace", newline="")
            header_seen = not self.header
            for start, row in records(text, self.sep):
                if row is None:
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                starts.append(start)
                if len(starts) > last:
                    break
            else:
                self._done = True
        self._starts = starts


def records(lines: Iterable[str], sep: str | None) -> Iterator[tuple[int, list[str] | None]]:
    """(first line, fields) of each record of a text, fields None for a blank line (pandas skips those).

    ``lines`` keep their line ends (a text file opened with ``newline=""``), so that a quoted field
    continues its record over them; ``sep`` None means runs of blanks.
    """
    counter = _Counter(lines)
    reader = csv.reader(counter, delimiter=" " if sep is None else sep, skipinitialspace=sep is None)
    while True:
        start = counter.count + 1
        try:
            with any_field_size():
                row = next(reader)
        except StopIteration:
            return
        except csv.Error:  # a NUL byte or an unterminated quote at the end: the numbering stops being exact here
            return
        if counter.count == start and not counter.last.strip():
            yield start, None
        else:
            yield start, [f for f in row if f != ""] if sep is None else row


class _Counter:
    """Lines of a text, counted as the csv reader takes them."""

    def __init__(self, lines: Iterable[str]):
        self.lines, self.count, self.last = iter(lines), 0, ""

    def __iter__(self) -> _Counter:
        return self

    def __next__(self) -> str:
        self.last = next(self.lines)
        self.count += 1
        return self.last


@contextlib.contextmanager
def any_field_size():
    """The csv module without its limit on a field's size (131,072 characters), as pandas reads them.

    A wide header split at a separator it does not hold is one field of megabytes; the limit is
    the process's, so it is lifted only while a line is split.
    """
    old = csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def row_numbers(first, positions: Iterable[int]) -> list[int]:
    """Positions numbered as the user counts them: ``first`` an offset (int) or a :class:`LineNumbers`."""
    if isinstance(first, LineNumbers):
        return first(positions)
    return [int(p) + int(first) for p in positions]

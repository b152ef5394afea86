"""Mini-batches of a streamed file: shuffled by blocks and within a bounded window, seeded, resumable.

In memory an epoch is a random order of all the rows (:class:`gradfit.train.batches.Batches`); a file read batch
by batch cannot be ordered that way without holding it. So an epoch here is built from the file's **blocks**
(:meth:`gradfit.data.file_rows.FileRows.blocks`: whole Parquet row groups, runs of CSV rows):

- at the epoch's start, from the fit's generator (as :class:`Batches` draws its order): a random order of the
  blocks (the pieces of a row group larger than a window stay together, in order, so that each row group is read
  once per epoch), then one seed per **window**, a run of consecutive blocks (in that order) of at most ``buffer_rows``
  file rows (:data:`BUFFER_ROWS`, lowered to what the memory budget allows);
- a window's rows are read together and put in a random order drawn from its seed; the epoch's rows are the
  windows' rows one window after another, and step ``k`` of the epoch takes rows ``[k*batch, (k+1)*batch)`` of
  them (a batch may straddle two windows).

A CSV file has no index to start reading at a block, so its blocks keep the file's order (one pass per epoch);
only the rows within each window are shuffled. With ``shuffle=False`` the epoch is the rows in file order.

At most about two windows are held (the one being taken from and the next one as it is read). A resumed fit
draws the epoch again from the generator's state at the epoch's start (what :meth:`state_dict` saves mid-epoch,
as :class:`Batches` does) and starts reading at the window that holds its step's first row: the step number, in
the loop's state, is the position in the file; the windows before it are not read.
"""

from __future__ import annotations

import bisect

import torch

from gradfit.errors import ConfigError
from gradfit.rowpass import rows_triple
from gradfit.train.batches import Batches

__all__ = ["BUFFER_ROWS", "StreamBatches", "window_rows"]

#: File rows shuffled together at most (the shuffle buffer): 2^20 rows of three float64 columns are 25 MB.
BUFFER_ROWS = 1 << 20
#: Copies of a window held at once at most (the one taken from, the next one read, its shuffled copy, slack).
_WINDOW_COPIES = 8


def window_rows(data, buffer_rows: int | None = None) -> int:
    """The rows of a shuffle window: ``buffer_rows`` (default :data:`BUFFER_ROWS`), at most what the memory budget
    allows for the copies of a window held at once."""
    from gradfit.memory import budget

    row_bytes = 8 * (len(data.x_names) + 2)  # float64 columns read: inputs, target, weights
    most = budget().nbytes // (row_bytes * _WINDOW_COPIES)
    return max(1, min(BUFFER_ROWS if buffer_rows is None else int(buffer_rows), int(most)))


class StreamBatches(Batches):
    """The mini-batch schedule of one fit over a streamed file's rows (a
    :class:`gradfit.data.file_rows.FileRows`): :class:`gradfit.train.batches.Batches` whose epochs are windows of
    blocks read from the file (its checkpoint state, the generator's at the epoch's start, is the same)."""

    def __init__(
        self, data, batch_size: int | None, shuffle: bool, generator: torch.Generator | None, buffer_rows=None
    ):
        super().__init__(data, batch_size, shuffle, generator)  # rows, batch, per_epoch, position, epoch_rng
        self._plan(data, buffer_rows, mini=self.batch < self.rows)

    def _plan(self, reading, buffer_rows, mini: bool) -> None:
        """The blocks of the rows ``reading`` (a :class:`gradfit.data.file_rows.FileRows`) that the epochs' windows
        are made of (none for full batch)."""
        self.reading = reading
        self.buffer_rows = window_rows(reading, buffer_rows)
        self.blocks = reading.blocks(self.buffer_rows) if mini else []
        self.counts = reading.block_counts(self.blocks) if mini else []
        groups = reading.block_groups(self.blocks) if mini else []
        self.units: list[list[int]] = []  # the blocks of each row group (consecutive: the blocks are in file order)
        for i, group in enumerate(groups):
            if i and group == groups[i - 1]:
                self.units[-1].append(i)
            else:
                self.units.append([i])
        self.windows: list[list[int]] | None = None  # this epoch's windows: indices of blocks, in reading order
        self.seeds: list[int] = []
        self.starts: list[int] = []  # the epoch row of each window's first row, and the epoch's rows last
        self._reader = None  # the blocks of this epoch from the held window's on
        self._held: tuple | None = None  # (window index, x, y, w) of the window taken from
        self._offset = 0  # its next row
        self._at: int | None = None  # the epoch row the next batch would start at without a seek

    def take(self, step: int) -> tuple:
        """``(x, y, w)`` of step ``step`` (``w`` None when the fit is unweighted)."""
        self.position = step + 1
        if self.batch >= self.rows:
            return rows_triple(self.data)
        return self._read(step % self.per_epoch)

    def _span(self, k: int) -> tuple[int, int]:
        """The epoch rows ``[start, stop)`` of the epoch's step ``k``."""
        return k * self.batch, min((k + 1) * self.batch, self.rows)

    def _epoch_generator(self) -> torch.Generator | None:
        """What draws an epoch's block order and window seeds: the fit's generator."""
        return self.generator

    def _read(self, k: int) -> tuple:
        """``(x, y, w)`` of the epoch's step ``k``, read from the windows (drawn at the epoch's start)."""
        if self.windows is None or (k == 0 and self.shuffle):
            self._draw()  # after a resume mid-epoch too, from the generator state of the epoch's start
        start, stop = self._span(k)
        if self._at != start:
            self._seek(start)
        parts: list[list] = []
        while start < stop:
            assert self._held is not None
            w, x, y, wt = self._held
            n = min(stop - start, len(x) - self._offset)
            if n <= 0:  # the windows hold fewer rows than the epoch: a bug, stopped before it fills the memory
                raise RuntimeError(f"the shuffle windows ran out at epoch row {start} of {stop}")
            a, b = self._offset, self._offset + n
            piece = [x[a:b], None if y is None else y[a:b], None if wt is None else wt[a:b]]
            start, self._offset = start + n, b
            if start < stop or self._offset == len(x):
                piece = [None if t is None else t.clone() for t in piece]  # the window is let go
                if w + 1 < len(self.starts) - 1:
                    self._held = None
                    self._load(w + 1)
            parts.append(piece)
        self._at = stop
        if len(parts) == 1:
            return tuple(parts[0])
        return tuple(None if parts[0][i] is None else torch.cat([p[i] for p in parts]) for i in range(3))

    def _draw(self) -> None:
        """This epoch's block order, windows and window seeds, drawn from the fit's generator."""
        self.epoch_rng = self.generator.get_state() if self.generator is not None else None
        generator = self._epoch_generator() if self.shuffle else None
        order = list(range(len(self.blocks)))
        if self.shuffle and self.reading.seekable:
            # The pieces of one row group stay together, in order: a pass reads each row group once, not once
            # per piece (a piece cannot be read without the rows of its group before it).
            units = self.units
            order = [i for u in torch.randperm(len(units), generator=generator).tolist() for i in units[u]]
        windows: list[list[int]] = []
        size = 0
        for i in order:
            rows = self.blocks[i][1] - self.blocks[i][0]
            if not windows or size + rows > self.buffer_rows:
                windows.append([])
                size = 0
            windows[-1].append(i)
            size += rows
        self.windows = windows
        self.seeds = torch.randint(0, 2**62, (len(windows),), generator=generator).tolist() if self.shuffle else []
        self.starts = [0]
        for window in windows:
            self.starts.append(self.starts[-1] + sum(self.counts[i] for i in window))
        self._held, self._at = None, None

    def _seek(self, row: int) -> None:
        """Start reading at the window that holds the epoch row ``row`` (the windows before it are not read)."""
        assert self.windows is not None
        w = bisect.bisect_right(self.starts, row) - 1
        while self.starts[w + 1] == self.starts[w]:  # an empty window (every row dropped): the next one
            w += 1
        blocks = [self.blocks[i] for window in self.windows[w:] for i in window]
        self._reader = self.reading.read_blocks(blocks)
        self._held = None
        self._load(w)
        self._offset = row - self.starts[w]

    def _load(self, w: int) -> None:
        """Read window ``w`` (the reader is at its first block) and put its rows in its seed's order."""
        assert self.windows is not None and self._reader is not None
        chunks = [next(self._reader) for _ in self.windows[w]]
        if len(chunks) == 1:
            x, y, wt = chunks[0]
        else:
            x = torch.cat([c[0] for c in chunks])
            y = None if chunks[0][1] is None else torch.cat([c[1] for c in chunks])
            wt = None if chunks[0][2] is None else torch.cat([c[2] for c in chunks])
        del chunks
        if self.shuffle and len(x) > 1:
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seeds[w]))
            x, y, wt = x[order], None if y is None else y[order], None if wt is None else wt[order]
        self._held, self._offset = (w, x, y, wt), 0
        if len(x) == 0 and w + 1 < len(self.windows):
            self._load(w + 1)  # every row of this window was dropped

    @property
    def drawn(self) -> bool:
        """Whether an epoch's windows have been drawn (its generator state kept in ``epoch_rng``)."""
        return self.windows is not None

    def layout(self) -> dict:
        """The checkpoint's ``windows`` field: the rows of a shuffle window and the blocks, on which the epochs drawn
        from the generator depend as much as on its state (the window follows the memory budget)."""
        if self.batch >= self.rows:
            return {}
        return {"windows": {"window_rows": self.buffer_rows, "blocks": len(self.blocks)}}

    def check_layout(self, saved: dict) -> None:
        """ConfigError when the checkpoint's batches were drawn over other windows than this fit's (a resumed fit
        would take other batches than the interrupted one)."""
        mine, theirs = self.layout().get("windows"), saved.get("windows")
        if mine is not None and theirs != mine:
            was = (
                f"shuffle windows of {theirs.get('window_rows')} rows over {theirs.get('blocks')} blocks"
                if isinstance(theirs, dict)
                else "no shuffle windows of a streamed file"
            )
            raise ConfigError(
                f"Cannot resume: the checkpoint's mini-batches were drawn from {was}; this fit's would be drawn from "
                f"windows of {mine['window_rows']} rows over {mine['blocks']} blocks, so it would take other "
                f"batches. The window follows the memory budget: resume with the budget of the interrupted run "
                f"(GRADFIT_MEMORY, --memory-budget)."
            )

"""Tables of numbers written as CSV fast: Arrow's C++ writer, a batch of rows at a time, in threads.

``history.csv`` and ``timings.csv`` are such tables: a history of a million rows is written in
about a second, not the tens of seconds of a text conversion in Python, so an interrupted fit
winds down fast. It imports nothing of gradfit but :mod:`gradfit.numbers_text` (small tables in Python).
"""

from __future__ import annotations

import os

__all__ = ["write_csv", "write_numbers_csv", "CSV_BATCH_NUMBERS", "CSV_WRITERS"]

#: Numbers of a table converted to CSV text at a time (2 MB of float64: bounds the memory of a wide history).
CSV_BATCH_NUMBERS = 1 << 18
#: Threads converting batches to CSV text at once (Arrow's writer releases the GIL): the wind-down after Ctrl-C.
CSV_WRITERS = max(1, min(4, os.cpu_count() or 1))


def write_csv(table, path: str | os.PathLike) -> None:
    """Write a table of numbers as CSV, the same text whoever writes it: a small one in Python
    (:func:`gradfit.numbers_text.write_small_numbers_csv`, whose import costs nothing), a large one by Arrow
    (:func:`write_numbers_csv`, whose import costs a small fit more than its work)."""
    from gradfit.numbers_text import write_small_numbers_csv

    if not write_small_numbers_csv(table, path):
        write_numbers_csv(table, path)


def write_numbers_csv(
    table, path: str | os.PathLike, batch_rows: int | None = None, workers: int | None = None
) -> None:
    """Write a table of numbers as CSV: a header, then one line per row, ``"\n"`` whatever the platform.

    Integers are written as integers; floats in their shortest exact form (the shortest text that
    reads back to the same float64: ``0.1``, ``1e-7``, ``1``, ``-0``, ``inf``), NaN as an empty
    field, so :func:`gradfit.outputs.load_run` reads every value back bit for bit. Arrow's C++ writer converts
    ``batch_rows`` rows at a time (default: :data:`CSV_BATCH_NUMBERS` numbers' worth), in
    ``workers`` threads (default :data:`CSV_WRITERS`), and the batches are written in order: at
    most ``workers + 1`` batches are in memory at once.

    Parameters
    ----------
    table : HistoryTable or similar
        ``names`` (the header), ``len(table)`` rows, and ``rows(start, stop)``: a NumPy array per
        column (int64 or float64).
    path : path
        Written as it is (wrap it in :func:`gradfit.atomic_files.atomic_path` for an atomic write).
    """
    import collections
    import csv
    import io
    from concurrent.futures import ThreadPoolExecutor

    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(table.names)  # quoted as pandas would, where needed
    names = [f"c{i}" for i in range(len(table.names))]  # Arrow's own header is not written
    batch_rows = batch_rows or max(1024, CSV_BATCH_NUMBERS // max(1, len(names)))
    starts = range(0, len(table), batch_rows)
    workers = max(1, min(workers or CSV_WRITERS, len(starts)))

    def text(start: int):
        return _csv_text(table.rows(start, min(start + batch_rows, len(table))), names)

    with open(path, "wb") as f:
        f.write(header.getvalue().encode("utf-8"))
        if workers == 1:
            for start in starts:
                f.write(text(start))
            return
        pool = ThreadPoolExecutor(workers, thread_name_prefix="gradfit-csv")
        try:
            pending: collections.deque = collections.deque()
            for start in starts:
                pending.append(pool.submit(text, start))
                if len(pending) > workers:  # bounded: the oldest batch is written before another is started
                    f.write(pending.popleft().result())
            while pending:
                f.write(pending.popleft().result())
        finally:
            # A second Ctrl-C lands here (in the main thread): the batches under way end in milliseconds, the
            # others are never started, and the caller's atomic_path removes the temporary file.
            pool.shutdown(wait=True, cancel_futures=True)


def _csv_text(columns, names: list[str]):
    """One batch of rows (a NumPy array per column) as CSV text without a header: an Arrow buffer."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    arrays = [pa.array(c, mask=np.isnan(c)) if c.dtype.kind == "f" else pa.array(c) for c in columns]
    del columns
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(
        pa.RecordBatch.from_arrays(arrays, names=names), sink, write_options=pa_csv.WriteOptions(include_header=False)
    )
    return sink.getvalue()

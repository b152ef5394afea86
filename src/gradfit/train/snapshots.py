"""The parameter snapshots of a large model's history, in a compact file of their own.

``history.csv`` holds a column per parameter, which suits a model of a few parameters (the seeds'
line, a formula) and not an MLP: 1,153 parameters x 1,000 snapshots is 25 MB of text. Above
:data:`MAX_PARAM_COLUMNS` parameters, :func:`gradfit.outputs.save_run` keeps ``history.csv`` to
the per-step columns and writes the snapshots to ``history_params.npz``
(``gradfit.outputs.SNAPSHOTS_NAME``): a NumPy ``.npz`` (a zip of
``.npy`` arrays, read with ``numpy.load`` without pickle) holding

- ``step``: ``(m,)`` int64, the steps of the kept snapshots;
- ``values``: ``(m, p)``, the parameter vectors (stored column-major), float32 when every value
  is a float32 (a float32 fit: exact, and half the bytes), else float64;
- ``names``: ``(p,)`` text, the flat parameter names (``W0[0,1]``...), the columns of ``values``.

The file is deflate-compressed and its bytes depend only on its content (fixed zip timestamps), so a
repeated fit writes the same bytes, as it does for ``history.csv``.

Examples
--------
>>> import numpy as np
>>> blob = snapshots_bytes(("a", "b"), np.array([0, 5]), np.array([[1.0, 2.0], [1.5, 2.5]]))
>>> names, steps, values = read_snapshots(io.BytesIO(blob))
>>> names, steps.tolist(), values.dtype, values.tolist()
(('a', 'b'), [0, 5], dtype('float64'), [[1.0, 2.0], [1.5, 2.5]])
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

__all__ = ["MAX_PARAM_COLUMNS", "snapshots_bytes", "read_snapshots", "wants_own_file"]

#: Parameters up to which history.csv holds a column per parameter; above it, history_params.npz.
MAX_PARAM_COLUMNS = 48
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no wall-clock time in the file
_ARRAYS = ("step", "values", "names")


def wants_own_file(n_params: int) -> bool:
    """Whether a history of ``n_params`` parameters keeps its snapshots in ``history_params.npz``."""
    return n_params > MAX_PARAM_COLUMNS


def snapshots_bytes(names, steps, values) -> bytes:
    """The ``.npz`` bytes of the snapshots (deterministic: the same arrays give the same bytes)."""
    values = np.asarray(values, dtype=np.float64)
    narrow = values.astype(np.float32)
    if np.array_equal(narrow.astype(np.float64), values, equal_nan=True):
        values = narrow  # every number is a float32 (a float32 fit): stored exactly in half the bytes
    arrays = {
        "step": np.asarray(steps, dtype=np.int64),
        "values": values,
        "names": np.asarray(list(names), dtype=str) if len(names) else np.zeros(0, dtype="<U1"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in _ARRAYS:
            npy = io.BytesIO()
            # Column-major: each parameter's path over the steps is contiguous, and a path varies
            # slowly, so it compresses better (3.7 MB instead of 4.3 for a 1,153-parameter MLP).
            array = np.asfortranarray(arrays[key]) if key == "values" else np.ascontiguousarray(arrays[key])
            np.lib.format.write_array(npy, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy.getvalue())
    return buffer.getvalue()


def read_snapshots(source) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """``(names, steps, values)`` from a ``history_params.npz`` file (a path or a binary file object).

    Values come back as float64, exactly as they were kept. Never unpickles.

    Raises
    ------
    ValueError
        The file is not such an archive, lacks an array, or its shapes disagree.
    """
    try:
        with np.load(source, allow_pickle=False) as z:
            missing = [k for k in _ARRAYS if k not in z.files]
            if missing:
                raise ValueError(f"it lacks the array(s) {', '.join(missing)}")
            steps, values, names = z["step"].astype(np.int64), z["values"].astype(np.float64), z["names"]
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    if values.ndim != 2 or values.shape != (len(steps), len(names)):
        raise ValueError(f"its arrays disagree: values {values.shape}, {len(steps)} steps, {len(names)} names")
    return tuple(str(n) for n in names.tolist()), steps, values

"""The data's fingerprint: a hash of every value, in order, that tells one table from another.

A fit records the fingerprint of the rows it was fitted on (``result.data["fingerprint"]``)
and a checkpoint records it in its identity, so that ``--resume`` and ``gradfit plot`` can tell
when the data given to them are no longer the data of the run: two values swapped, one
value changed in its last bit, a row added or removed, a column renamed into place.

It is SHA-256 over the tensors' shapes, dtypes and raw bytes, read a block of rows at a time
where the data live (a GPU tensor is copied to the host one block at a time), so it costs one
pass over the data and no copy of the table. The same numbers in the same dtype give the same
fingerprint on every machine: NumPy and torch store floats in IEEE 754 little-endian order on
every platform gradfit supports.
"""

from __future__ import annotations

import hashlib

import torch

from gradfit.rowpass import across

__all__ = ["data_fingerprint", "dataset_fingerprint", "rows_fingerprint", "FINGERPRINT_LENGTH"]

#: Hex digits kept: 64 bits, so two different tables share a fingerprint once in 10^19.
FINGERPRINT_LENGTH = 16
_BLOCK_BYTES = 1 << 24  # 16 MB a block: a few milliseconds of hashing, a bounded host copy


def data_fingerprint(
    x: torch.Tensor, y: torch.Tensor | None = None, w: torch.Tensor | None = None, block_bytes: int = _BLOCK_BYTES
) -> str:
    """A hash of every value of ``x``, ``y`` and ``w`` (those given), in row order.

    Parameters
    ----------
    x, y, w : Tensor
        The inputs, the targets and the row weights; ``y`` and ``w`` may be None. The tensors'
        dtypes are part of the hash: the same numbers in float32 and float64 differ.
    block_bytes : int
        How much of a tensor is hashed at a time (memory, not the result, depends on it).

    Returns
    -------
    str
        :data:`FINGERPRINT_LENGTH` hex digits.

    Examples
    --------
    >>> x = torch.arange(6.0).reshape(3, 2)
    >>> y = torch.tensor([1.0, 2.0, 3.0])
    >>> data_fingerprint(x, y) == data_fingerprint(x.clone(), y.clone())
    True
    >>> data_fingerprint(x, y) == data_fingerprint(x, y[[1, 0, 2]])  # two values swapped
    False
    """
    h = hashlib.sha256()
    for name, t in (("x", x), ("y", y), ("w", w)):
        if t is None:
            continue
        t = t.detach()
        h.update(f"{name}{tuple(t.shape)}{t.dtype};".encode())
        if t.numel() == 0:
            continue
        rows = t.reshape(t.shape[0], -1) if t.dim() else t.reshape(1, 1)
        per_block = max(1, block_bytes // max(1, rows.shape[1] * rows.element_size()))
        for start in range(0, rows.shape[0], per_block):
            block = rows[start : start + per_block].contiguous().cpu()
            # .data: the array's own bytes as a memoryview, which the type checker knows is a buffer
            h.update(block.view(torch.uint8).numpy().data)
    return h.hexdigest()[:FINGERPRINT_LENGTH]


def dataset_fingerprint(dataset) -> str:
    """The fingerprint of a :class:`~gradfit.data.dataset.Dataset` as a saved run can read it again.

    Its inputs and targets, and its row weights when they came from a column of the data (weights
    given as an array are not saved with a run, so they are left out).
    """
    how = getattr(dataset, "weighting", None)
    w = dataset.w if how is not None and how.column is not None else None
    return data_fingerprint(dataset.x, dataset.y, w=w)


def rows_fingerprint(rows, chunk_size: int = 1 << 18) -> str:
    """The fingerprint of a :class:`gradfit.rowpass.RowSet` (rows read chunk by chunk): one pass, each of ``x``,
    ``y`` and ``w`` hashed in row order by its own hasher, then the three digests with the shapes and dtypes.

    It tells one row set from another as :func:`data_fingerprint` tells tables apart, but it is not equal to the
    fingerprint of the same rows in memory (that one hashes every ``x`` before any ``y``, which would take a pass
    per column here), nor that of the same rows in other shards. The chunk size does not change it.
    """
    parts = {name: hashlib.sha256() for name in ("x", "y", "w")}
    shapes: dict[str, tuple] = {}
    for chunk in rows.chunks(chunk_size):
        for name, t in zip(("x", "y", "w"), chunk):
            if t is None:
                continue
            t = t.detach().contiguous().cpu()
            n = shapes.get(name, (0, *t.shape[1:], t.dtype))[0]
            shapes[name] = (n + t.shape[0], *t.shape[1:], t.dtype)
            parts[name].update(t.view(torch.uint8).numpy().data)
    h = hashlib.sha256(b"rows;")
    for name, shape in shapes.items():
        h.update(f"{name}{shape};".encode())
        h.update(parts[name].digest())
    shards = across(rows, h.hexdigest())  # one process's shard: every process's, in rank order (all call this)
    if len(shards) > 1:
        h = hashlib.sha256(";".join(shards).encode())
    return h.hexdigest()[:FINGERPRINT_LENGTH]

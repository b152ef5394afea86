"""Compressed data files (``.gz``, ``.bz2``, ``.xz``, ``.zip``, ``.zst``): checked, then read as one byte stream.

The container is checked before any text is read: its first bytes must be the format's own
signature (a plain CSV named ``.csv.gz`` is told apart from a damaged gzip file), a zip archive
must hold exactly one file, and ``.zst`` needs the optional ``zstandard`` package, named when it
is missing. Every reader (the layout's sample, the rows, the line numbers of a message) then
opens the same decompressed stream with :func:`open_stream`, and every failure while
decompressing (a truncated file, a bad checksum) becomes a DataError naming the cause with
:func:`damaged`.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from gradfit.errors import DataError

__all__ = ["COMPRESSIONS", "DECOMPRESSION_ERRORS", "check_compressed", "damaged", "decompression_errors", "open_stream"]

#: Suffix -> (the format's name, its first bytes).
COMPRESSIONS = {
    ".gz": ("gzip", (b"\x1f\x8b",)),
    ".bz2": ("bzip2", (b"BZh",)),
    ".xz": ("xz", (b"\xfd7zXZ\x00",)),
    ".zip": ("zip", (b"PK\x03\x04", b"PK\x05\x06")),  # the second: an archive with no file in it
    ".zst": ("Zstandard", (b"\x28\xb5\x2f\xfd",)),
}
#: What decompressing a damaged file raises, whatever the format (zstandard's own error is added when present).
DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
)
_OPENERS = {".gz": gzip.GzipFile, ".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}


def check_compressed(p: Path, compression: str) -> None:
    """A DataError unless ``p`` starts as a ``compression`` file should and can be read here."""
    name, signatures = COMPRESSIONS[compression]
    with open(p, "rb") as f:
        head = f.read(64)
    if not head.startswith(signatures):
        raise DataError(
            f"Cannot read {str(p)!r}: its name ends in {compression}, but it is not {_a(name)} file "
            f"({_what_it_is(head)}). {_rename_advice(p, compression, head)}"
        )
    if compression == ".zip":
        _check_zip(p)
    elif compression == ".zst":
        _zstandard(p)


@contextlib.contextmanager
def open_stream(p: Path, compression: str) -> Iterator[IO[bytes]]:
    """The decompressed bytes of ``p`` (checked first with :func:`check_compressed`) as a binary file."""
    if compression in _OPENERS:
        with _OPENERS[compression](p, "rb") as f:
            yield f
    elif compression == ".zip":
        with zipfile.ZipFile(p) as z, z.open(_members(z)[0]) as f:
            yield f
    else:
        zstandard = _zstandard(p)
        with open(p, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as f:
            yield f


def damaged(p: Path, compression: str, err: BaseException) -> DataError:
    """The DataError for a failure while decompressing ``p``."""
    name = COMPRESSIONS[compression][0]
    reason = str(err).strip().rstrip(".") or type(err).__name__
    if isinstance(err, EOFError) or "ended before" in reason or "unexpected end" in reason.lower():
        cause = (
            ": it ends before the end of its compressed data, so the file is truncated (was the copy or "
            "download complete?)"
        )
    else:
        cause = f" ({reason})"
    return DataError(
        f"Cannot read {str(p)!r}: the {name} data is damaged{cause}. Compress the file again, or give the plain file."
    )


def decompression_errors() -> tuple[type[BaseException], ...]:
    """:data:`DECOMPRESSION_ERRORS`, with zstandard's error when the package is installed."""
    try:
        import zstandard
    except ImportError:
        return DECOMPRESSION_ERRORS
    return (*DECOMPRESSION_ERRORS, zstandard.ZstdError)


def _a(name: str) -> str:
    return f"an {name}" if name[0] in "aeiouxAEIOU" else f"a {name}"


def _check_zip(p: Path) -> None:
    try:
        with zipfile.ZipFile(p) as z:
            members = _members(z)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise damaged(p, ".zip", err) from None
    if not members:
        raise DataError(f"Cannot read {str(p)!r}: the zip archive holds no file. Check that it was made completely.")
    if len(members) > 1:
        names = ", ".join(i.filename for i in members[:5]) + (", ..." if len(members) > 5 else "")
        raise DataError(
            f"Cannot read {str(p)!r}: the zip archive holds {len(members)} files ({names}); gradfit reads "
            f"an archive that holds exactly one. Extract the one you want (unzip {str(p)} NAME) and give it."
        )
    if members[0].flag_bits & 0x1:
        raise DataError(
            f"Cannot read {str(p)!r}: the file in the zip archive is encrypted. Extract it with its "
            f"password and give the plain file."
        )


def _members(z: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    # Folder entries are not files: an archive of one file inside a folder holds two entries.
    return [i for i in z.infolist() if not i.is_dir()]


def _zstandard(p: Path):
    try:
        import zstandard
    except ImportError:
        raise DataError(
            f"Cannot read {str(p)!r}: reading Zstandard-compressed files (.zst) needs the Python package "
            f"'zstandard', which is not installed. Install it (pip install zstandard), or decompress the "
            f"file first (zstd -d {str(p)})."
        ) from None
    return zstandard


def _what_it_is(head: bytes) -> str:
    for name, signatures in COMPRESSIONS.values():
        if head.startswith(signatures):
            return f"it is a {name} file"
    if head.startswith(b"PAR1"):
        return "it is a Parquet file"
    if not head:
        return "it is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with the bytes {head[:4].hex(' ')}"
    return (
        f"it starts like plain text: {text.splitlines()[0][:30]!r}"
        if "\x00" not in text
        else f"it starts with the bytes {head[:4].hex(' ')}"
    )


def _rename_advice(p: Path, compression: str, head: bytes) -> str:
    actual = next((s for s, (_, sigs) in COMPRESSIONS.items() if head.startswith(sigs)), None)
    stem = p.name[: -len(compression)] if p.name.lower().endswith(compression) else p.stem
    if actual is not None:
        return f"Rename it to end in {actual} ({stem}{actual})."
    if head.startswith(b"PAR1"):
        return "Rename it to end in .parquet."
    return f"If it is plain text, rename it to {stem!r}; if it should be {COMPRESSIONS[compression][0]}, compress it again."

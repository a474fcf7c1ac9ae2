"""The safetensors format, read with every claim checked against the file before any array is.

A file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON (``{name: {"dtype",
"shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``) and the data, each
entry's bytes at ``[begin, end)`` from the data's start (huggingface/safetensors, "Format").
:func:`read` parses the length and the JSON itself, reading ``n`` bytes only once ``n`` is
within the file and the format's limit, and checks every entry (a known dtype, a shape of
sizes whose bytes are ``end - begin``) and the layout as the format requires it (entries
tile the data exactly: no gap, no overlap, the last ending at the file's end) BEFORE any array
is read; :meth:`SafetensorsFile.array` then reads one entry's byte range and nothing else. A
header claiming 100 GB in a small file is refused having read only the header. Writing goes
through the ``safetensors`` package (``pip install 'xpnn[io]'``), atomically.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, NamedTuple

import numpy as np

from xpnn.errors import CheckpointError
from xpnn.io import archive
from xpnn.optional import require

MAX_HEADER_BYTES = 100_000_000  # the safetensors package's own limit
MAX_RANK = 64
# the format's dtype names -> NumPy's (little-endian); BF16 has none: read as its upper 16 bits
DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
FLOATS = ("F16", "BF16", "F32", "F64")
INTEGERS = ("I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64")
SUFFIX = ".safetensors"


def is_safetensors(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a safetensors file (by its suffix; ``.npz`` is the default)."""
    return os.fspath(path).lower().endswith(SUFFIX)


class Entry(NamedTuple):
    """One tensor as the header describes it (no data read)."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class SafetensorsFile:
    """An opened, checked file: entries by name, the metadata, where the data starts."""

    def __init__(self, path: str, entries: dict[str, Entry], metadata: dict[str, str], start: int) -> None:
        self.path, self.entries, self.metadata, self.start = path, entries, metadata, start

    def array(self, name: str) -> np.ndarray:
        """Entry ``name`` as a host array (BF16 widened to float32), reading its bytes only."""
        entry = self.entries[name]
        size = entry.end - entry.begin
        with open(self.path, "rb") as file:
            file.seek(self.start + entry.begin)
            data = archive.read_exactly(file, size)
        if len(data) != size:  # the file shrank since it was checked
            raise CheckpointError(f"{self.path}: entry {name!r} is truncated: {len(data)} of {size} bytes")
        flat = np.frombuffer(data, DTYPES[entry.dtype])
        if entry.dtype == "BF16":
            flat = (flat.astype("<u4") << 16).view("<f4")
        return flat.astype(flat.dtype.newbyteorder("=")).reshape(entry.shape)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise CheckpointError(f"names given twice in the JSON header: {twice[:5]}")
    return dict(pairs)


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(path: str, name: str, value: Any) -> Entry:
    """One header entry, checked: a known dtype, a shape of sizes, offsets that hold it exactly."""
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise CheckpointError(f"{path}: entry {name!r} must have dtype, shape and data_offsets, got {keys}")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CheckpointError(
            f"{path}: entry {name!r} has dtype {dtype!r:.40}, expected one of {list(DTYPES)}"
        )
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_size(d) for d in shape):
        raise CheckpointError(f"{path}: entry {name!r} has shape {shape!r:.80}, expected a list of sizes")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_size(o) for o in offsets):
        raise CheckpointError(
            f"{path}: entry {name!r} has data_offsets {offsets!r:.80}, expected [begin, end]"
        )
    begin, end = offsets
    size = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
    if end < begin or end - begin != size:
        raise CheckpointError(
            f"{path}: entry {name!r} claims shape {tuple(shape)} of {dtype} ({size} bytes), "
            f"but its data_offsets [{begin}, {end}] hold {end - begin}"
        )
    return Entry(dtype, tuple(shape), begin, end)


def _check_layout(path: str, entries: dict[str, Entry], data_bytes: int) -> None:
    """The entries tile the data exactly, as the format requires: sorted by offset, each starts
    where the previous ended, and the last ends at the end of the file."""
    reached, previous = 0, None
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != reached:
            what = "overlaps" if entry.begin < reached else "leaves a gap after"
            after = f"entry {previous!r}" if previous is not None else "the start of the data"
            raise CheckpointError(
                f"{path}: entry {name!r} starts at byte {entry.begin}, which {what} {after} "
                f"(ending at {reached})"
            )
        reached, previous = entry.end, name
    if reached != data_bytes:
        raise CheckpointError(
            f"{path}: the entries hold {reached} bytes of data, the file holds {data_bytes} after its header"
        )


def _metadata(path: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CheckpointError(f"{path}: __metadata__ must map names to strings, got {value!r:.80}")
    return value


def _header(path: str) -> tuple[Any, int, int]:
    """The parsed JSON header, its length and the file's size: the length checked against the
    file and the format's limit before the header is read."""
    try:
        with open(path, "rb") as file:
            total = os.fstat(file.fileno()).st_size
            prefix = file.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path}: {total} bytes, too short for a safetensors header length")
            length = int.from_bytes(prefix, "little")
            if length > min(MAX_HEADER_BYTES, total - 8):
                raise CheckpointError(
                    f"{path}: header length {length} bytes, but the file holds {total - 8} after it "
                    f"(at most {MAX_HEADER_BYTES})"
                )
            raw = archive.read_exactly(file, length)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read: {error}") from None
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path}: corrupt JSON header: {type(error).__name__}: {error}") from None
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return header, length, total


def read(path: str | os.PathLike[str]) -> SafetensorsFile:
    """Open ``path`` with its header and every entry checked; no tensor data is read."""
    path = os.fspath(path)
    header, length, total = _header(path)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the JSON header is a {type(header).__name__}, expected an object")
    metadata = _metadata(path, header.pop("__metadata__", None))
    entries = {name: _entry(path, name, value) for name, value in header.items()}
    _check_layout(path, entries, total - 8 - length)
    return SafetensorsFile(path, entries, metadata, 8 + length)


def write(path: str | os.PathLike[str], tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write host arrays and string metadata as a safetensors file, atomically."""
    numpy_io = require("safetensors.numpy", extra="io", who=f"saving {os.fspath(path)!r} as safetensors")
    data = numpy_io.save({k: np.asarray(v, order="C") for k, v in tensors.items()}, metadata=metadata)
    archive.write_atomically(path, lambda file: file.write(data))

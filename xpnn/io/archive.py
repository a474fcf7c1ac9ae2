"""Host file I/O for saved models: an ``.npz`` of host arrays with a JSON header; never pickle.

Both a model's own save (:mod:`xpnn.io.serialization`) and training checkpoints
(:mod:`xpnn.train.checkpoint`) write through here. Writes go to a temporary file in the same
directory, are fsync'd and renamed over the target: a crash mid-save leaves the previous file
intact. Nested plain data (an optimizer's ``state_dict``) is stored as JSON with each array
replaced by a reference to an npz entry.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any, NamedTuple

import numpy as np

from xpnn import backend
from xpnn.errors import CheckpointError

FORMAT = "xpnn-checkpoint"
VERSION = 1
HEADER = "__header__"
# what zipfile and zlib raise on a corrupt archive (NotImplementedError: a forged "zip version",
# RuntimeError: a member flagged as encrypted)
ZIP_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)
MAX_HEADER_BYTES = 1 << 26
EXPANSION, SLACK = 4, 1 << 20  # what the entries read from a file may decompress to (Archive)
LAYER_BYTES = 1 << 10  # a built layer's Python objects (measured ~600 B), charged to that budget
MAX_DEPTH = 64  # nesting of the saved optimizer state; JSON deeper than Python's stack is refused


def encode(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """Nested plain data -> JSON, each array replaced by a reference to an npz entry."""
    if isinstance(value, dict):
        return {str(k): encode(v, f"{prefix}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    arrays[prefix] = backend.to_host(value)
    return {"__array__": prefix}


def decode(value: Any, arrays: Archive, depth: int = 0) -> Any:
    """The inverse of :func:`encode`: references replaced by the arrays they name, read now."""
    if depth > MAX_DEPTH:
        raise CheckpointError(f"{arrays.path}: the saved state nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays.array(value["__array__"])
        return {k: decode(v, arrays, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, arrays, depth + 1) for v in value]
    return value


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy stubs type the allow_pickle keyword


def write(path: str | os.PathLike[str], header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``header`` (JSON) and ``arrays`` to ``path`` atomically: temp file, fsync, rename."""
    arrays = {**arrays, HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    write_atomically(path, lambda file: _write_npz(file, arrays))


def write_atomically(path: str | os.PathLike[str], fill: Callable[[IO[bytes]], Any]) -> None:
    """``fill(file)`` writes the contents; they replace ``path`` only once complete and on disk
    (a temporary file in the same directory, fsync'd, renamed over the target): a crash
    mid-save leaves the previous file intact."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            fill(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Entry(NamedTuple):
    """One array of the archive as its ``.npy`` header describes it (no data read yet)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool
    offset: int  # bytes of .npy header before the data


class Archive:
    """An opened saved file: the JSON header and every entry's shape and dtype, read from the
    ``.npy`` headers inside the zip without reading any data. :meth:`array` reads one entry,
    and only as many bytes as really decompress: a header claiming 10**12 elements cannot
    make it allocate more than the file holds. Nor can compression: all the entries read from
    one file decompress to at most ``EXPANSION`` times its size (plus ``SLACK``), so a 1 MB
    file never becomes gigabytes of arrays (a zip bomb); xpnn writes its entries uncompressed.
    Rebuilding a saved architecture charges ``LAYER_BYTES`` a layer to the same budget: a 1 MB
    header listing 80,000 ``ReLU`` layers would otherwise build 50 MB of Python objects."""

    def __init__(self, path: str, entries: dict[str, Entry], header: dict[str, Any], spent: int = 0) -> None:
        self.path, self.entries, self.header = path, entries, header
        self.budget = EXPANSION * os.path.getsize(path) + SLACK
        self.spent = spent  # bytes decompressed so far

    def nbytes(self, name: str) -> int:
        entry = self.entries[name]
        return math.prod(entry.shape) * entry.dtype.itemsize

    def check_budget(self, names: list[str], layers: int = 0) -> None:
        """Refuse, before anything is read or built for them, entries (and ``layers`` layers to
        build) that would take more than the file's budget (see the class docstring)."""
        arrays = self.spent + sum(self.nbytes(name) for name in names)
        total = arrays + layers * LAYER_BYTES
        if total > self.budget:
            size = os.path.getsize(self.path)
            what = f"its entries decompress to {arrays} bytes"
            what += f", its {layers} layers take {layers * LAYER_BYTES} more" if layers else ""
            raise CheckpointError(
                f"{self.path}: {what}: {total} bytes in memory, more than {EXPANSION} times the file's "
                f"{size} bytes (+{SLACK}): refused as a compression bomb or a forged architecture"
            )

    def array(self, name: Any, kinds: str = "f") -> np.ndarray:
        """Entry ``name`` as a host array; its dtype's kind must be one of ``kinds``."""
        entry = self.entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise CheckpointError(f"{self.path}: no array entry {name!r}")
        if entry.dtype.kind not in kinds or entry.dtype.itemsize not in (1, 4, 8):
            raise CheckpointError(
                f"{self.path}: entry {name!r} has dtype {entry.dtype}, expected float32 or float64"
            )
        self.check_budget([name])
        size = self.nbytes(name)
        self.spent += size
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(f"{name}.npy") as file:
                file.read(entry.offset)
                data = read_exactly(file, size)
        except ZIP_ERRORS as error:
            raise CheckpointError(f"{self.path}: entry {name!r} is corrupt: {error}") from None
        if len(data) != size:
            raise CheckpointError(
                f"{self.path}: entry {name!r} is truncated: its header says {entry.shape} of "
                f"{entry.dtype} ({size} bytes), the file holds {len(data)}"
            )
        flat = np.frombuffer(data, entry.dtype).astype(entry.dtype.newbyteorder("="))
        return flat.reshape(entry.shape, order="F" if entry.fortran else "C")


def read_exactly(file: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes in 1 MiB reads: memory grows with the bytes really there."""
    chunks, total = [], 0
    while total < size:
        chunk = file.read(min(size - total, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _entry(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Entry:
    """The ``.npy`` header of one zip member, checked against the member's size."""
    name = info.filename.removesuffix(".npy")
    try:
        with archive.open(info) as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = file.tell()
    except Exception as error:  # numpy parses the header text with ast/tokenize: any of their errors
        raise CheckpointError(f"{path}: entry {name!r} has no readable .npy header: {error!r}") from None
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CheckpointError(f"{path}: entry {name!r} has shape {shape}, not a tuple of sizes")
    if dtype.hasobject or dtype.kind not in "fiub" or dtype.fields is not None:
        raise CheckpointError(f"{path}: entry {name!r} has dtype {dtype}, not a plain number type")
    size = offset + math.prod(shape) * dtype.itemsize
    if size != info.file_size:
        raise CheckpointError(
            f"{path}: entry {name!r} claims shape {shape} of {dtype} ({size} bytes with its header), "
            f"but holds {info.file_size} bytes"
        )
    return Entry(tuple(int(d) for d in shape), dtype, bool(fortran), offset)


def read(path: str | os.PathLike[str]) -> Archive:
    """Open a saved file: its header checked (:func:`check_header`) and its entries' shapes and
    dtypes known; no array data is read until asked for."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
        size = os.path.getsize(path)
        if magic == b"\x93NUMPY":
            raise CheckpointError(
                f"{path}: is a single .npy array, not an xpnn checkpoint (.npz from model.save)"
            )
        with zipfile.ZipFile(path) as archive:
            infos = [info for info in archive.infolist() if info.filename.endswith(".npy")]
            entries = {info.filename.removesuffix(".npy"): _entry(path, archive, info) for info in infos}
    except (*ZIP_ERRORS, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable xpnn checkpoint (.npz): {error}") from None
    if HEADER not in entries:
        raise CheckpointError(f"{path}: no {HEADER} entry: not an xpnn checkpoint")
    header_bytes, limit = math.prod(entries[HEADER].shape), min(MAX_HEADER_BYTES, max(size, SLACK))
    if header_bytes > limit:  # JSON text becomes ~20x its bytes in Python objects: never more than the file
        raise CheckpointError(
            f"{path}: a {header_bytes}-byte header, more than {limit} bytes (the file's size)"
        )
    unread = Archive(path, entries, {})
    raw = unread.array(HEADER, kinds="u")
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path}: corrupt JSON header: {type(error).__name__}: {error}") from None
    check_header(path, header)
    return Archive(path, entries, header, unread.spent)


def check_header(path: str, header: Any) -> None:
    """The header must be a JSON object of this format and of a version this xpnn reads."""
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the JSON header is a {type(header).__name__}, expected an object")
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: header format {header.get('format')!r}, expected {FORMAT!r}")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: header version {version!r}, expected an integer from 1 to {VERSION}")
    if version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version}, this xpnn reads up to {VERSION}")

"""Host file I/O for saved models: an ``.npz`` of host arrays with a JSON header; never pickle.

Both a model's own save (:mod:`xpnn.nn.serialization`) and training checkpoints
(:mod:`xpnn.train.checkpoint`) write through here. Writes go to a temporary file in the same
directory, are fsync'd and renamed over the target: a crash mid-save leaves the previous file
intact. Nested plain data (an optimizer's ``state_dict``) is stored as JSON with each array
replaced by a reference to an npz entry.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import IO, Any

import numpy as np

from xpnn import backend
from xpnn.errors import CheckpointError

FORMAT = "xpnn-checkpoint"
VERSION = 1
HEADER = "__header__"


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


def decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The inverse of :func:`encode`: references replaced by (copies of) their arrays."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return np.array(arrays[value["__array__"]])
        return {k: decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    return value


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy stubs type the allow_pickle keyword


def write(path: str | os.PathLike[str], header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``header`` (JSON) and ``arrays`` to ``path`` atomically: temp file, fsync, rename."""
    path = os.fspath(path)
    arrays = {**arrays, HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            _write_npz(file, arrays)
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


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and every array of a saved file (read, then the file is closed)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: np.array(archive[key]) for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(f"{path}: not a readable xpnn checkpoint (.npz): {error}") from None
    if HEADER not in arrays:
        raise CheckpointError(f"{path}: no {HEADER} entry: not an xpnn checkpoint")
    try:
        header = json.loads(arrays.pop(HEADER).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt JSON header: {error}") from None
    if header.get("format") != FORMAT or not isinstance(header.get("version"), int):
        raise CheckpointError(f"{path}: header format {header.get('format')!r}, expected {FORMAT!r}")
    if header["version"] > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {header['version']}, this xpnn reads up to {VERSION}"
        )
    return header, arrays

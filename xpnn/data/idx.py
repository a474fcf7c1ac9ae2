"""The IDX file format (LeCun's MNIST files): read and write, checking every header field.

Host file I/O, so NumPy; the file is untrusted: sizes come from the header and are checked
against the bytes actually there before any array is made.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from xpnn.errors import DataFormatError

# IDX type code -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise DataFormatError(f"{path}: corrupt or truncated gzip stream ({error})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip'd or raw) into a host NumPy array in native byte order.

    Checks the magic number (two zero bytes, a known type code, the rank) and that the
    file holds exactly the bytes its header promises; raises :class:`DataFormatError`
    naming the file and what is wrong.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(f"{path}: {len(data)} bytes, too short for an IDX header (4 bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataFormatError(
            f"{path}: bad magic number 0x{data[:4].hex()}: an IDX file starts with two zero bytes"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataFormatError(f"{path}: unknown IDX data type code 0x{code:02X}; expected one of {known}")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataFormatError(
            f"{path}: truncated header: {ndim} dimensions need {offset} bytes, got {len(data)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = offset + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFormatError(
            f"{path}: {kind}: header says shape {dims} of {dtype.name} ({expected} bytes in all), "
            f"the file holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip'd when ``path`` ends in ``.gz`` (tests use it)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    code = codes.get(array.dtype)
    if code is None:
        raise DataFormatError(f"{path}: IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = header + array.astype(IDX_DTYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(body) if str(path).endswith(".gz") else body)

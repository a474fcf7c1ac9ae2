"""Host memory that a message-passing library (mpi4py) can read and write without a copy.

MPI sends and receives host buffers. A NumPy array is one as it is; a torch CPU tensor is
one through DLPack (``np.from_dlpack`` shares its memory, writeable). Anything else (a GPU
array, array-api-strict, JAX) has no such view: :func:`host_view` says so with ``None``.
The small host arrays the collectives exchange besides gradients (a model's fingerprint,
the epoch's metric sums, a seed) are built here too, so the rest of xpnn names no library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

Array = Any


def host_view(x: Array) -> np.ndarray | None:
    """A writeable, C-contiguous NumPy array sharing ``x``'s memory, or None where there is none."""
    if type(x) is np.ndarray:
        return x if x.flags.writeable and x.flags.c_contiguous else None
    if array_api_compat.is_torch_array(x) and x.device.type == "cpu" and not x.requires_grad:
        if x.is_contiguous() and not x.is_conj() and not x.is_neg():
            return np.from_dlpack(x)
    return None


def host_values(values: Sequence[float] | Sequence[int], dtype: str = "float64") -> np.ndarray:
    """A 1-D host array of Python numbers (``"float64"`` or ``"int64"``)."""
    return np.asarray(values, dtype=dtype)


def host_bytes(data: bytes | None, size: int) -> np.ndarray:
    """``data`` as a uint8 host array, or ``size`` zero bytes to receive into when ``data`` is None."""
    if data is None:
        return np.zeros(size, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8).copy()


def digest_row(code: int, digest: bytes) -> np.ndarray:
    """A (1, k) int64 row: ``code`` then ``digest`` (a multiple of 8 bytes) read as int64s, for an
    allgather that compares what every rank is about to do."""
    return np.concatenate([[code], np.frombuffer(digest, dtype=np.int64)]).astype(np.int64)[None, :]


def probe_row(values: Array, width: int) -> np.ndarray:
    """A (1, width + 1) float64 row: how many ``values`` there are, then the first ``width`` of
    them (zeros past the end)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    row = np.zeros((1, width + 1))
    row[0, 0], row[0, 1 : 1 + min(flat.size, width)] = flat.size, flat[:width]
    return row


def first_mismatch(a: np.ndarray, b: np.ndarray, relative: float = 1e-4) -> int | None:
    """The first index where rows ``a`` and ``b`` differ by more than ``relative`` of ``a``'s
    largest magnitude (past its first entry, a count, which must match exactly); None where none
    does (NaN equals NaN)."""
    scale = relative * (1.0 + np.nanmax(np.abs(a[1:]), initial=0.0))
    close = np.isclose(a, b, rtol=0.0, atol=scale, equal_nan=True)
    return None if close.all() else int(np.argmin(close))


def inverse_order(runs: Sequence[tuple[int, int]], n: int) -> np.ndarray:
    """Where each of ``n`` samples sits among rows gathered as the ``runs`` ``[start, stop)`` of
    sample positions, one after another: ``gathered[result]`` is in sample order."""
    where = np.empty(n, dtype=np.int64)
    positions = [np.arange(start, stop, dtype=np.int64) for start, stop in runs]
    where[np.concatenate(positions) if positions else np.empty(0, np.int64)] = np.arange(n, dtype=np.int64)
    return where


def gather_buffers(host: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an allgather of ``host``'s rows where rank r sends ``counts[r]`` rows: the receive
    array and each rank's element count and offset in it. ``host`` made C-contiguous first."""
    width = int(np.prod(host.shape[1:], dtype=np.int64))
    out = np.empty((int(counts.sum()), *host.shape[1:]), dtype=host.dtype)
    sizes = counts * width
    return out, sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]])


def contiguous(host: np.ndarray) -> np.ndarray:
    """``host`` as a C-contiguous array (itself where it is one)."""
    return np.ascontiguousarray(host)

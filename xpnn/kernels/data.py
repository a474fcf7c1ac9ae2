"""The fast path of the loader's batch gather: uint8 images to a float batch in one pass."""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.kernels import compile, threads

Array = Any
_compiled: Any = None  # the jitted loop, built at the first call


def gather_scaled(x: Array, index: Array, dtype: Any, scale: float) -> Array | None:
    """``astype(take(x, index, axis=0), dtype) * scale`` for a batch of uint8 images in one pass
    (the plain form gathers, casts and multiplies: three passes, two temporaries): each value
    is cast to ``dtype`` exactly and multiplied by ``scale`` cast to ``dtype``, as NumPy does.
    None where numba is absent or the arrays are not a C-contiguous uint8 NumPy array and
    int64 indices (the caller then runs the plain form). A large batch runs on several threads,
    a block of rows each (:mod:`xpnn.kernels.threads`; every value is cast on its own: the
    same bits)."""
    if not compile.available() or type(x) is not np.ndarray or type(index) is not np.ndarray:
        return None
    if x.dtype != np.uint8 or index.dtype != np.int64 or index.ndim != 1 or not x.flags.c_contiguous:
        return None
    if np.dtype(dtype) not in (np.float32, np.float64) or x.ndim < 1 or x.size == 0:
        return None
    out = np.empty((index.shape[0], *x.shape[1:]), dtype=dtype)
    rows = x.reshape(x.shape[0], -1)
    parts = threads.parts_for(out.size)
    flat_out = out.reshape(index.shape[0], -1)
    if _loops()["gather_scaled"](parts, rows, index, out.dtype.type(scale), flat_out) >= 0:
        return None  # an index out of range (none read): NumPy's take raises its own error
    return out


def _loops() -> dict[str, Any]:
    global _compiled
    if _compiled is None:
        _compiled = {"gather_scaled": compile.threaded(_gather_scaled_loop)}
    return _compiled


def _gather_scaled_loop(
    x: Array, index: Array, scale: Any, out: Array, begin: int, end: int, parts: int
) -> int:
    # -1, or the first position whose index is out of range (checked before anything is read)
    n, total = index.shape[0], x.shape[0]
    for r in range(n):
        if index[r] < -total or index[r] >= total:
            return r
    for part in range(begin, end):  # DataLoader: astype(take(x, index, axis=0), dtype) * scale
        for r in range(part * n // parts, (part + 1) * n // parts):
            row = index[r]
            for c in range(x.shape[1]):
                out[r, c] = out.dtype.type(x[row, c]) * scale
    return -1

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

"""Views: what flat parameter buffers need and the standard does not give.

A flat buffer is one 1-D array per parameter group whose slices, reshaped, ARE the
parameters: writeable views. NumPy, CuPy and torch have them; array-api-strict and JAX do
not (those backends take the per-parameter path, same equations, same numbers).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backend import assign, namespace

Array = Any


def supports_views(x: Array) -> bool:
    """Whether slices of ``x`` are writeable views (NumPy, CuPy, torch): flat buffers need that."""
    if array_api_compat.is_numpy_array(x):
        return bool(x.flags.writeable)
    return array_api_compat.is_cupy_array(x) or array_api_compat.is_torch_array(x)


def view_as(flat: Array, shape: tuple[int, ...]) -> Array:
    """A view of the contiguous 1-D ``flat`` with ``shape`` (never a copy: the flat buffers need
    writes through it to reach the buffer). Each library's own call, because
    array-api-compat's ``reshape(..., copy=False)`` refuses torch tensors before
    array-api-compat 1.16 (NotImplementedError). A contiguous 1-D slice always has such a view."""
    if array_api_compat.is_torch_array(flat):
        return flat.view(shape)  # raises rather than copy
    if type(flat) is np.ndarray or array_api_compat.is_cupy_array(flat):
        if not flat.flags.c_contiguous:  # reshape would copy
            raise ValueError(f"view_as: no view of shape {shape} of a non-contiguous array")
        return flat.reshape(shape)
    return namespace(flat).reshape(flat, shape, copy=False)


def flatten_into(arrays: Sequence[Array], out: Array) -> Array:
    """Concatenate the flattened ``arrays`` into the existing 1-D ``out`` (no new allocation)."""
    if array_api_compat.is_torch_array(out):
        import torch

        flat = [a.reshape(-1) for a in arrays]
        try:
            return torch.cat(flat, out=out)
        except RuntimeError:  # an input aliases ``out`` (re-packing swapped parameters)
            return out.copy_(torch.cat(flat))
    if array_api_compat.is_numpy_array(out):
        return np.concatenate([a.reshape(-1) for a in arrays], out=out)
    if array_api_compat.is_cupy_array(out):
        return sys.modules["cupy"].concatenate([a.reshape(-1) for a in arrays], out=out)
    xp = namespace(out)
    return assign(out, xp.concat([xp.reshape(a, (-1,)) for a in arrays]))

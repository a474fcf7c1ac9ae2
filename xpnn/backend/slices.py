"""Writing into a slice of an array that may be immutable (JAX): the standard has no scatter.

Padding and col2im write into windows of a larger array. NumPy, CuPy, torch and
array-api-strict arrays take the standard ``x[index] = value`` / ``x[index] += value`` in
place; immutable JAX arrays take their functional ``.at[index]`` update and the caller
rebinds, exactly as with :func:`xpnn.backend.assign`.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

Array = Any


def set_slice(target: Array, index: tuple[Any, ...], value: Array) -> Array:
    """``target[index] = value`` in place where writeable, else a new array (rebind the result)."""
    if array_api_compat.is_writeable_array(target):
        target[index] = value
        return target
    return target.at[index].set(value)


def add_slice(target: Array, index: tuple[Any, ...], value: Array) -> Array:
    """``target[index] += value`` in place where writeable, else a new array (rebind the result)."""
    if array_api_compat.is_writeable_array(target):
        target[index] += value
        return target
    return target.at[index].add(value)


def add_at(target: Array, indices: Array, values: Array, axis: int = 0) -> Array:
    """``target[..., indices[k], ...] += values[..., k, ...]`` along ``axis`` for 1-D integer
    ``indices``, where repeated indices add up (embedding and gather gradients): the standard
    has no scatter-add, so each library's own (in place where writeable; rebind the result),
    and a one-hot matrix product for any other namespace."""
    index = (slice(None),) * axis + (indices,)
    if array_api_compat.is_numpy_array(target):
        import numpy as np

        np.add.at(target, index, values)  # type: ignore[arg-type]
        return target
    if array_api_compat.is_torch_array(target):
        return target.index_add_(axis, indices, values)
    if array_api_compat.is_cupy_array(target):
        import cupyx

        cupyx.scatter_add(target, index, values)
        return target
    if array_api_compat.is_jax_array(target):
        return target.at[index].add(values)
    xp = array_api_compat.array_namespace(target)
    n = target.shape[axis]
    onehot = xp.astype(xp.arange(n, device=target.device)[:, None] == indices[None, :], values.dtype)
    moved = xp.moveaxis(values, axis, 0)
    summed = onehot @ xp.reshape(moved, (moved.shape[0], -1))
    return target + xp.moveaxis(xp.reshape(summed, (n, *moved.shape[1:])), 0, axis)

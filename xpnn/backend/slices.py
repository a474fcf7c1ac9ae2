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

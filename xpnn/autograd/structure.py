"""Reductions, shapes, indexing and joins of Tensors on plain arrays: each forward
``f(xp, *operands, **options)`` returns (value, saved) and its ``*_vjp(node, g)`` one gradient
per input, from what the forward kept. Axes are checked against the operand's rank, never
wrapped round (``t.sum(axis=3)`` of a 2-D tensor is an error, as the standard says).
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.ops import Grads, unbroadcast
from xpnn.backend import namespace
from xpnn.backend.slices import add_at, add_slice
from xpnn.errors import ShapeError

Array = Any


# -- reductions (saved: the input shape, the axes and keepdims; max/min: the tie shares) -----------
def _restore_axes(g: Array, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Array:
    """``g`` with the reduced ``axes`` back as size-1 axes, so it broadcasts over the input."""
    if keepdims or not axes:
        return g
    kept = [n if i not in axes else 1 for i, n in enumerate(shape)]
    return namespace(g).reshape(g, tuple(kept))


def sum_vjp(node: Any, g: Array) -> Grads:
    shape, axes, keepdims, dtype = node.saved
    xp = namespace(g)
    g = _restore_axes(g, shape, axes, keepdims)
    return (g * xp.ones(shape, dtype=dtype, device=g.device),)


def mean_vjp(node: Any, g: Array) -> Grads:
    shape, axes, keepdims, dtype = node.saved
    count = 1
    for axis in axes:
        count *= shape[axis]
    xp = namespace(g)
    g = _restore_axes(g, shape, axes, keepdims) * (1.0 / max(count, 1))
    return (g * xp.ones(shape, dtype=dtype, device=g.device),)


def extreme_vjp(node: Any, g: Array) -> Grads:
    """max / min: the gradient goes to the elements equal to the extreme, shared equally at ties."""
    share, shape, axes, keepdims = node.saved
    return (_restore_axes(g, shape, axes, keepdims) * share,)


def var_vjp(node: Any, g: Array) -> Grads:
    """``var = sum((x - mean)**2) / (n - correction)``: ``dx = 2 (x - mean) / (n - correction)``."""
    centered, divisor, shape, axes, keepdims = node.saved
    g = _restore_axes(g, shape, axes, keepdims)
    return (g * centered * (2.0 / divisor),)


# -- shape and indexing (saved: what undoes the move) -------------------------------------------
def reshape_vjp(node: Any, g: Array) -> Grads:
    return (namespace(g).reshape(g, node.saved),)


def permute_vjp(node: Any, g: Array) -> Grads:
    axes = node.saved
    inverse = [0] * len(axes)
    for i, axis in enumerate(axes):
        inverse[axis] = i
    return (namespace(g).permute_dims(g, tuple(inverse)),)


def getitem_vjp(node: Any, g: Array) -> Grads:
    """Basic indexing (slices, ints, None, ...): ``g`` added into zeros at the same index.

    The standard's ``__setitem__`` takes no ``None`` (new axes): they are dropped from the
    index, and ``g`` loses their size-1 axes by the reshape."""
    shape, index, dtype = node.saved
    xp = namespace(g)
    out = xp.zeros(shape, dtype=dtype, device=g.device)
    if index is None:
        index = ...
    elif isinstance(index, tuple):
        index = tuple(item for item in index if item is not None)
    return (add_slice(out, index, xp.reshape(g, tuple(out[index].shape))),)


def stack_vjp(node: Any, g: Array) -> Grads:
    """``stack`` / ``concat`` along ``axis``: each input gets its slice of ``g``."""
    bounds, axis, stacked = node.saved
    grads: list[Array | None] = []
    for (start, stop), need in zip(bounds, node.needs, strict=True):
        if not need:
            grads.append(None)
            continue
        index = [slice(None)] * g.ndim
        index[axis] = start if stacked else slice(start, stop)
        grads.append(g[tuple(index)])
    return grads


def cast_vjp(node: Any, g: Array) -> Grads:
    return (namespace(g).astype(g, node.saved),)


# -- forwards of the operations that are not one-liners: ``f(xp, *operands, **options)`` returns
# (value, saved) for the vjp beside it ------------------------------------------------------------
def axis_index(axis: int, ndim: int) -> int:
    """``axis`` of an ``ndim``-D array counted from the front; outside ``[-ndim, ndim)`` a
    ShapeError, as the standard says (wrapping it round would silently pick another axis)."""
    if not -ndim <= axis < ndim:
        raise ShapeError(f"axis {axis} is out of range for a {ndim}-D tensor")
    return axis % ndim


def axes_of(ndim: int, axis: Any) -> tuple[int, ...]:
    """``axis`` (None, an int or a tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(axis_index(a, ndim) for a in axes))


def sum_forward(xp: Any, x: Array, *, axis: Any = None, keepdims: bool = False) -> tuple[Array, Any]:
    axes = axes_of(x.ndim, axis)
    return xp.sum(x, axis=axes, keepdims=keepdims), (tuple(x.shape), axes, keepdims, x.dtype)


def mean_forward(xp: Any, x: Array, *, axis: Any = None, keepdims: bool = False) -> tuple[Array, Any]:
    axes = axes_of(x.ndim, axis)
    return xp.mean(x, axis=axes, keepdims=keepdims), (tuple(x.shape), axes, keepdims, x.dtype)


def _extreme(xp: Any, x: Array, axis: Any, keepdims: bool, pick: Any) -> tuple[Array, Any]:
    axes = axes_of(x.ndim, axis)
    kept = pick(x, axis=axes, keepdims=True)
    hits = xp.astype(x == kept, x.dtype)
    share = hits / xp.sum(hits, axis=axes, keepdims=True)
    value = kept if keepdims else xp.reshape(kept, tuple(n for i, n in enumerate(x.shape) if i not in axes))
    return value, (share, tuple(x.shape), axes, keepdims)


def max_forward(xp: Any, x: Array, *, axis: Any = None, keepdims: bool = False) -> tuple[Array, Any]:
    return _extreme(xp, x, axis, keepdims, xp.max)


def min_forward(xp: Any, x: Array, *, axis: Any = None, keepdims: bool = False) -> tuple[Array, Any]:
    return _extreme(xp, x, axis, keepdims, xp.min)


def var_forward(
    xp: Any, x: Array, *, axis: Any = None, keepdims: bool = False, correction: float = 0.0
) -> tuple[Array, Any]:
    axes = axes_of(x.ndim, axis)
    count = 1
    for a in axes:
        count *= x.shape[a]
    centered = x - xp.mean(x, axis=axes, keepdims=True)
    divisor = max(count - correction, 0)
    value = xp.sum(centered * centered, axis=axes, keepdims=keepdims) / divisor
    return value, (centered, divisor, tuple(x.shape), axes, keepdims)


def astype_forward(xp: Any, x: Array, *, dtype: Any) -> tuple[Array, Any]:
    return xp.astype(x, dtype), x.dtype


def reshape_forward(xp: Any, x: Array, *, shape: tuple[int, ...]) -> tuple[Array, Any]:
    return xp.reshape(x, tuple(shape)), tuple(x.shape)


def permute_forward(xp: Any, x: Array, *, axes: tuple[int, ...]) -> tuple[Array, Any]:
    return xp.permute_dims(x, axes), axes


def broadcast_forward(xp: Any, x: Array, *, shape: tuple[int, ...]) -> tuple[Array, Any]:
    return xp.broadcast_to(x, tuple(shape)), (tuple(x.shape),)


def broadcast_vjp(node: Any, g: Array) -> Grads:
    return (unbroadcast(g, node.saved[0]),)


def stack_forward(xp: Any, *arrays: Array, axis: int = 0) -> tuple[Array, Any]:
    axis = axis_index(axis, arrays[0].ndim + 1)
    return xp.stack(arrays, axis=axis), ([(i, i + 1) for i in range(len(arrays))], axis, True)


def concat_forward(xp: Any, *arrays: Array, axis: int = 0) -> tuple[Array, Any]:
    axis = axis_index(axis, arrays[0].ndim)
    bounds, start = [], 0
    for a in arrays:
        bounds.append((start, start + a.shape[axis]))
        start += a.shape[axis]
    return xp.concat(arrays, axis=axis), (bounds, axis, False)


def take_forward(xp: Any, x: Array, *, indices: Array, axis: int = 0) -> tuple[Array, Any]:
    """``take`` with integer ``indices`` of any shape: the result has ``indices.shape`` in place
    of ``axis`` (NumPy's advanced indexing along one axis)."""
    axis = axis_index(axis, x.ndim)
    flat = xp.reshape(indices, (-1,))
    taken = xp.take(x, flat, axis=axis)
    shape = (*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :])
    return xp.reshape(taken, shape), (tuple(x.shape), flat, axis, x.dtype)


def take_vjp(node: Any, g: Array) -> Grads:
    shape, flat, axis, dtype = node.saved
    xp = namespace(g)
    g = xp.reshape(g, (*shape[:axis], flat.shape[0], *shape[axis + 1 :]))
    out = xp.zeros(shape, dtype=dtype, device=g.device)
    return (add_at(out, flat, g, axis),)


def take_along_axis_forward(xp: Any, x: Array, *, indices: Array, axis: int = -1) -> tuple[Array, Any]:
    axis = axis_index(axis, x.ndim)
    return xp.take_along_axis(x, indices, axis=axis), (tuple(x.shape), indices, axis, x.dtype)


def take_along_axis_vjp(node: Any, g: Array) -> Grads:
    """Each picked element's gradient back at its place: one-hot along ``axis`` (the standard
    has no ``put_along_axis``), summed over the picks."""
    shape, indices, axis, dtype = node.saved
    xp = namespace(g)
    n = shape[axis]
    positions = xp.reshape(xp.arange(n, device=g.device), (n,) + (1,) * (len(shape) - axis))
    onehot = xp.expand_dims(indices, axis=axis) == positions  # (..., n, picks, ...)
    spread = xp.astype(onehot, dtype) * xp.expand_dims(g, axis=axis)
    return (xp.sum(spread, axis=axis + 1),)


def getitem_forward(xp: Any, x: Array, *, index: Any) -> tuple[Array, Any]:
    return x[index], (tuple(x.shape), index, x.dtype)

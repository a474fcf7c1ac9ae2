"""The backward of every elementary Tensor operation, on plain arrays.

Each ``*_vjp(node, g)`` returns one gradient per input of ``node`` (None where ``node.needs``
says none is wanted), from ``g`` = dL/d(output) and what the forward kept in ``node.saved``.
The forwards are one line each, in :mod:`xpnn.autograd.tensor`, beside the call that records
them. Everything here uses the namespace of the arrays at hand.

Broadcasting: an input of shape ``s`` that was broadcast to the output's shape receives
``g`` summed over the broadcast axes (:func:`unbroadcast`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xpnn.backend import namespace
from xpnn.backend.slices import add_at, add_slice
from xpnn.errors import ShapeError

Array = Any
Grads = Sequence[Array | None]


def unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """``g`` summed down to ``shape`` (the shape of an input that broadcasting stretched)."""
    if tuple(g.shape) == shape:
        return g
    xp = namespace(g)
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    total = xp.sum(g, axis=axes, keepdims=True) if axes else g
    return xp.reshape(total, shape)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else ()


# -- arithmetic (saved: the input shapes, and the operands where the rule reads them) -------------
def add_vjp(node: Any, g: Array) -> Grads:
    sa, sb = node.saved
    need_a, need_b = node.needs
    return (unbroadcast(g, sa) if need_a else None, unbroadcast(g, sb) if need_b else None)


def sub_vjp(node: Any, g: Array) -> Grads:
    sa, sb = node.saved
    need_a, need_b = node.needs
    return (unbroadcast(g, sa) if need_a else None, unbroadcast(-g, sb) if need_b else None)


def mul_vjp(node: Any, g: Array) -> Grads:
    a, b = node.saved
    need_a, need_b = node.needs
    return (
        unbroadcast(g * b, _shape(a)) if need_a else None,
        unbroadcast(g * a, _shape(b)) if need_b else None,
    )


def div_vjp(node: Any, g: Array) -> Grads:
    a, b = node.saved
    need_a, need_b = node.needs
    ga = g / b
    return (
        unbroadcast(ga, _shape(a)) if need_a else None,
        unbroadcast(-ga * a / b, _shape(b)) if need_b else None,
    )


def neg_vjp(node: Any, g: Array) -> Grads:
    return (-g,)


# -- with a Python number c (saved: c): one input, the number's shape never stretches it ----------
def identity_vjp(node: Any, g: Array) -> Grads:
    """``t + c``, ``t - c``."""
    return (g,)


def scale_vjp(node: Any, g: Array) -> Grads:
    """``t * c``, ``c * t``."""
    return (g * node.saved,)


def divide_by_vjp(node: Any, g: Array) -> Grads:
    """``t / c``: ``g / c``, as the two-operand rule computes it (not ``g * (1 / c)``)."""
    return (g / node.saved,)


def pow_vjp(node: Any, g: Array) -> Grads:
    """``d(x**p)/dx = p * x**(p - 1)`` for a Python-number exponent ``p``."""
    x, p = node.saved
    if p == 2:
        return (g * (2.0 * x),)
    if p == 1:
        return (g,)
    return (g * (p * x ** (p - 1)),)


def matmul_vjp(node: Any, g: Array) -> Grads:
    """``C = A @ B`` (batched, broadcast over leading axes; 1-D operands as numpy's):
    ``dA = dC @ B^T``, ``dB = A^T @ dC``, each summed down to its operand's shape.

    A 1-D operand is a row (A) or a column (B) whose axis the product dropped: ``dC`` gets it
    back, the column's last and then the row's before it (vector @ vector: 0-d -> (1, 1))."""
    a, b = node.saved
    xp = namespace(g)
    a2 = xp.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = xp.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    g2 = g
    if b.ndim == 1:
        g2 = xp.expand_dims(g2, axis=g2.ndim)
    if a.ndim == 1:
        g2 = xp.expand_dims(g2, axis=g2.ndim - 1)
    need_a, need_b = node.needs
    da = db = None
    if need_a:
        da = xp.reshape(unbroadcast(g2 @ xp.matrix_transpose(b2), tuple(a2.shape)), a.shape)
    if need_b:
        db = xp.reshape(unbroadcast(xp.matrix_transpose(a2) @ g2, tuple(b2.shape)), b.shape)
    return (da, db)


# -- elementwise functions (saved: the input or the output the derivative reads) -----------------
def exp_vjp(node: Any, g: Array) -> Grads:
    return (g * node.saved,)  # saved: exp(x)


def log_vjp(node: Any, g: Array) -> Grads:
    return (g / node.saved,)  # saved: x


def sqrt_vjp(node: Any, g: Array) -> Grads:
    return (g * (0.5 / node.saved),)  # saved: sqrt(x)


def tanh_vjp(node: Any, g: Array) -> Grads:
    y = node.saved
    return (g * (1.0 - y * y),)


def abs_vjp(node: Any, g: Array) -> Grads:
    """``sign(x)``, 0 at 0 (torch's), from comparisons: ``sign`` itself is not in every namespace."""
    x = node.saved
    xp = namespace(x)
    return (g * (xp.astype(x > 0, g.dtype) - xp.astype(x < 0, g.dtype)),)


def mask_vjp(node: Any, g: Array) -> Grads:
    """The gradient passes where the saved boolean mask holds (clip's inside, relu's x > 0)."""
    return (g * namespace(g).astype(node.saved, g.dtype),)


def pick_vjp(node: Any, g: Array) -> Grads:
    """``maximum`` / ``minimum`` / ``where``: saved (share of a, share of b, shape a, shape b);
    at a tie of maximum and minimum each side gets half (torch's rule)."""
    share_a, share_b, sa, sb = node.saved
    need_a, need_b = node.needs
    return (
        unbroadcast(g * share_a, sa) if need_a else None,
        unbroadcast(g * share_b, sb) if need_b else None,
    )


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


def where_forward(xp: Any, a: Array, b: Array, *, condition: Array) -> tuple[Array, Any]:
    """``where(condition, a, b)``: each side's gradient where it was chosen."""
    chosen = xp.astype(condition, a.dtype if hasattr(a, "dtype") else b.dtype)
    return xp.where(condition, a, b), (chosen, 1.0 - chosen, _shape(a), _shape(b))


def _tie_shares(xp: Any, a: Array, b: Array, first_wins: Array) -> tuple[Array, Array]:
    dtype = a.dtype if hasattr(a, "dtype") else b.dtype
    tie = xp.astype(a == b, dtype) * 0.5
    share_a = xp.astype(first_wins, dtype) + tie
    return share_a, 1.0 - share_a


def maximum_forward(xp: Any, a: Array, b: Array) -> tuple[Array, Any]:
    share_a, share_b = _tie_shares(xp, a, b, a > b)
    return xp.maximum(a, b), (share_a, share_b, _shape(a), _shape(b))


def minimum_forward(xp: Any, a: Array, b: Array) -> tuple[Array, Any]:
    share_a, share_b = _tie_shares(xp, a, b, a < b)
    return xp.minimum(a, b), (share_a, share_b, _shape(a), _shape(b))


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

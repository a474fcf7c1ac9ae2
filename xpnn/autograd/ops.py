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


# -- elementwise choices (forwards: ``f(xp, *operands, **options)`` -> (value, saved)) ---------
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

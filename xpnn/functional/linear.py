"""The affine map ``y = x @ w + b`` (Dense, F.linear) and the NNFS book's L1/L2 penalty.

``x`` is ``(..., n_in)`` (torch's Linear convention), ``w`` is ``(n_in, n_out)`` (the book's,
the transpose of torch's), ``b`` is ``(n_out,)`` or None. Backward, with ``x`` and ``g``
flattened to rows: ``dx = g @ w.T``, ``dw = x.T @ g``, ``db = sum(g, axis=0)``.

Fast path (``fused``, on NumPy): the bias added in place into the fresh product, and the
weight and bias gradients written straight into the optimizer's flat gradient buffer where
the parameter offers its view of it (:meth:`xpnn.autograd.Node.grad_out`); the same numbers.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.functional.activations import relu_gradient
from xpnn.kernels import dense as dense_kernels

Array = Any


def _rows(x: Array) -> Array:
    """``x`` as a matrix of rows (a no-op for 2-D input)."""
    return x if x.ndim == 2 else namespace(x).reshape(x, (-1, x.shape[-1]))


class Linear(Function):
    """``y = x @ w + b`` over the last axis of ``x``."""

    name = "linear"
    fresh_grads = True  # products and sums: new arrays, or a leaf's own flat-buffer view

    @staticmethod
    def forward(ctx: Node, x: Array, w: Array, b: Array | None = None, *, fused: bool = True) -> Array:
        rows = _rows(x)
        out = dense_kernels.affine(rows, w, b) if fused and b is not None else None
        if out is None:
            out = rows @ w if b is None else rows @ w + b
        ctx.saved = (rows, w, tuple(x.shape), fused)
        return out if x.ndim == 2 else namespace(out).reshape(out, (*x.shape[:-1], w.shape[1]))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        return _gradients(ctx, g if g.ndim == 2 else _rows(g), None)


def _gradients(ctx: Node, g: Array, db: Array | None) -> tuple[Array | None, ...]:
    """``(dx, dw, db)`` of ``x @ w + b`` from ``g`` as rows; ``db`` where summed already."""
    rows, w, shape, fused = ctx.saved[0], ctx.saved[1], ctx.saved[-2], ctx.saved[-1]
    needs = ctx.needs
    dw = dx = None
    if needs[1]:
        dw = dense_kernels.matmul(rows.T, g, out=ctx.grad_out(1)) if fused else None
        if dw is None:
            dw = rows.T @ g
    if db is None and len(needs) > 2 and needs[2]:
        db = dense_kernels.sum_rows(g, out=ctx.grad_out(2)) if fused else None
        if db is None:
            db = namespace(g).sum(g, axis=0)
    if needs[0]:
        dx = g @ w.T
        if len(shape) != 2:
            dx = namespace(dx).reshape(dx, shape)
    return (dx, dw, db)


class LinearReLU(Function):
    """``relu(x @ w + b)`` as ONE node: Dense followed by ReLU (a Sequential fuses the pair).
    With ``fused``, where numba is installed: the bias add and the maximum in one pass over
    the fresh product, and backward's mask (``y > 0``, its output: exactly where the input was
    positive) and bias gradient in one pass, into ``g`` itself when the tape says only this
    node holds it (:mod:`xpnn.kernels.dense`, the same numbers as the two nodes)."""

    name = "linear_relu"
    fresh_grads = True

    @staticmethod
    def forward(ctx: Node, x: Array, w: Array, b: Array | None = None, *, fused: bool = True) -> Array:
        rows = _rows(x)
        out = rows @ w
        y = dense_kernels.bias_relu(out, b) if fused and b is not None else None
        if y is None:
            y = namespace(out).maximum(out if b is None else out + b, 0.0)
        ctx.saved = (rows, w, y, tuple(x.shape), fused)
        return y if x.ndim == 2 else namespace(y).reshape(y, (*x.shape[:-1], w.shape[1]))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        y, fused = ctx.saved[2], ctx.saved[-1]
        g = g if g.ndim == 2 else _rows(g)
        bias = len(ctx.needs) > 2 and ctx.needs[2]
        fast = dense_kernels.relu_grad_bias(y, g, ctx.grad_out(2), ctx.owned) if fused and bias else None
        if fast is not None:
            return _gradients(ctx, *fast)
        return _gradients(ctx, relu_gradient(y, g, fused, ctx.owned), None)


class Penalty(Function):
    """The NNFS book's chapter-14 regularization ``l1 * sum|w| + l2 * sum(w**2)`` of one
    array, with the book's gradient ``l1 * s + 2 * l2 * w`` where ``s`` is +1 at ``w >= 0`` and
    -1 below (not ``sign``, which is 0 at 0: the book's bias gradient at its zero start)."""

    name = "penalty"

    @staticmethod
    def forward(ctx: Node, w: Array, *, l1: float, l2: float) -> Array:
        xp = namespace(w)
        ctx.saved = (w, l1, l2)
        total = xp.zeros((), dtype=w.dtype, device=w.device)
        # the terms of w first: array-api-strict's operators refuse a Tensor on their right, so
        # these equations record on Tensors (each path checks the other) only in this order
        if l1:
            total = l1 * xp.sum(xp.abs(w)) + total
        if l2:
            total = l2 * xp.sum(w * w) + total
        return total

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        w, l1, l2 = ctx.saved
        return (g * penalty_gradient(w, l1, l2),)


def penalty_gradient(w: Array, l1: float, l2: float) -> Array:
    """d(l1 * sum|w| + l2 * sum(w**2))/dw with the book's sign (+1 at 0)."""
    xp = namespace(w)
    grad = xp.zeros_like(w)
    if l1:
        grad = grad + l1 * xp.where(w < 0, -1.0, xp.ones_like(w))
    if l2:
        grad = grad + (2.0 * l2) * w
    return grad

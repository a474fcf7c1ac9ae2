"""Activations as differentiable functions, each backward beside its forward.

``relu``: ``y = max(x, 0)``, the gradient passes where ``x > 0`` (0 at the kink, as the book
and torch); multiplied by the 0/1 mask rather than through ``where`` (NumPy's ``where`` on an
unpredictable mask measured ~10x slower: 350 vs 26 us for 256x350); where numba is installed
a one-pass loop (:func:`xpnn.backend.dense_kernels.relu_grad`, the same bits).
``leaky_relu``: ``x`` where ``x > 0``, else ``alpha * x``. ``sigmoid``: ``(1 + tanh(x/2)) / 2``
(no overflow for any x), ``dy = y (1 - y)``. ``tanh``: ``dy = 1 - y**2``. ``softmax`` along an
axis, shifted by the maximum: ``dx = y * (g - sum(g * y))`` (the Jacobian-vector product, never
the Jacobian). ``log_softmax``: ``x - max - log(sum(exp(x - max)))``, ``dx = g - exp(y) sum(g)``.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.kernels import cross_entropy as softmax_kernels
from xpnn.kernels import dense as dense_kernels

Array = Any


def _reduce_max(x: Array, axis: int, fused: bool) -> Array:
    """``max(x, axis, keepdims=True)``; with ``fused`` and the last axis, NumPy's ufunc reduce."""
    out = softmax_kernels.row_max(x) if fused and axis in (-1, x.ndim - 1) else None
    return namespace(x).max(x, axis=axis, keepdims=True) if out is None else out


def _reduce_sum(x: Array, axis: int, fused: bool) -> Array:
    """``sum(x, axis, keepdims=True)``; with ``fused`` and the last axis, NumPy's ufunc reduce."""
    out = softmax_kernels.row_sum(x) if fused and axis in (-1, x.ndim - 1) else None
    return namespace(x).sum(x, axis=axis, keepdims=True) if out is None else out


class ReLU(Function):
    name = "relu"
    fresh_grads = True  # a new array, or ``g`` itself where only this node held it

    @staticmethod
    def forward(ctx: Node, x: Array, *, fused: bool = True) -> Array:
        ctx.saved = (x, fused)
        y = dense_kernels.relu(x) if fused else None  # numba on several threads, large arrays only
        return namespace(x).maximum(x, 0.0) if y is None else y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        x, fused = ctx.saved
        return (relu_gradient(x, g, fused, ctx.owned),)


def relu_gradient(mask_source: Array, g: Array, fused: bool, in_place: bool = False) -> Array:
    """``g`` where ``mask_source > 0``, else 0 (``mask_source``: ReLU's input, or its output);
    with ``fused``, written into ``g`` itself where ``in_place`` (only the caller holds ``g``)."""
    dx = dense_kernels.relu_grad(mask_source, g, in_place) if fused else None
    if dx is not None:
        return dx
    xp = namespace(g)
    dx = xp.astype(mask_source > 0, g.dtype)
    dx *= g  # in place into the fresh mask (JAX rebinds): one temporary fewer
    return dx


class LeakyReLU(Function):
    """Computed as ``max(x, alpha * x)`` for ``0 <= alpha <= 1`` and ``min`` above 1: the same
    numbers without a slow ``where``."""

    name = "leaky_relu"

    @staticmethod
    def forward(ctx: Node, x: Array, *, alpha: float = 0.01) -> Array:
        xp = namespace(x)
        ctx.saved = (x, alpha)
        pick = xp.maximum if alpha <= 1.0 else xp.minimum
        return pick(x, alpha * x)

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        x, alpha = ctx.saved
        mask = namespace(g).astype(x > 0, g.dtype)
        return (g * (mask + (1.0 - mask) * alpha),)  # exactly 1 or alpha


class Sigmoid(Function):
    name = "sigmoid"

    @staticmethod
    def forward(ctx: Node, x: Array) -> Array:
        y = 0.5 * (namespace(x).tanh(0.5 * x) + 1.0)
        ctx.saved = y
        return y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        y = ctx.saved
        return (g * y * (1.0 - y),)


class Tanh(Function):
    name = "tanh"

    @staticmethod
    def forward(ctx: Node, x: Array) -> Array:
        y = namespace(x).tanh(x)
        ctx.saved = y
        return y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        y = ctx.saved
        return (g * (1.0 - y * y),)


class Softmax(Function):
    name = "softmax"

    @staticmethod
    def forward(ctx: Node, x: Array, *, axis: int = -1, fused: bool = True) -> Array:
        e = namespace(x).exp(x - _reduce_max(x, axis, fused))
        y = e / _reduce_sum(e, axis, fused)
        ctx.saved = (y, axis, fused)
        return y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        y, axis, fused = ctx.saved
        return (y * (g - _reduce_sum(g * y, axis, fused)),)


class LogSoftmax(Function):
    name = "log_softmax"

    @staticmethod
    def forward(ctx: Node, x: Array, *, axis: int = -1, fused: bool = True) -> Array:
        xp = namespace(x)
        shifted = x - _reduce_max(x, axis, fused)
        y = shifted - xp.log(_reduce_sum(xp.exp(shifted), axis, fused))
        ctx.saved = (y, axis, fused)
        return y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        y, axis, fused = ctx.saved
        return (g - namespace(g).exp(y) * _reduce_sum(g, axis, fused),)

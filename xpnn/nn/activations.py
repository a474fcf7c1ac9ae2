"""Activation layers: elementwise (ReLU, LeakyReLU, Sigmoid, Tanh) and Softmax."""

from __future__ import annotations

from typing import Any

from xpnn.backend import namespace, numba_fast, numpy_fast
from xpnn.nn.checks import check_array, check_floating, check_number
from xpnn.nn.layers import Layer

Array = Any


def row_max(x: Array, fused: bool) -> Array:
    """``max(x, axis=-1, keepdims=True)``; with ``fused``, NumPy's ufunc reduce (the same numbers)."""
    out = numpy_fast.row_max(x) if fused else None
    return namespace(x).max(x, axis=-1, keepdims=True) if out is None else out


def row_sum(x: Array, fused: bool) -> Array:
    """``sum(x, axis=-1, keepdims=True)``; with ``fused``, NumPy's ufunc reduce (the same sum)."""
    out = numpy_fast.row_sum(x) if fused else None
    return namespace(x).sum(x, axis=-1, keepdims=True) if out is None else out


class _Activation(Layer):
    def _check(self, x: Array) -> Any:
        check_array(type(self).__name__, x)
        check_floating(type(self).__name__, x)
        return namespace(x)


class ReLU(_Activation):
    """``y = max(x, 0)``; the gradient passes where ``x > 0`` (0 at the kink, as the book does).

    Backward multiplies by the 0/1 mask rather than calling ``where``: NumPy's ``where`` on
    an unpredictable mask measured ~10x slower than the multiply (350 vs 26 us for 256x350).
    ``fused`` (on by default): where numba is installed, NumPy arrays take that product in
    one pass without storing the mask (:func:`xpnn.backend.numba_fast.relu_grad`, same bits).
    """

    fused: bool = True

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.x = x
        return xp.maximum(x, 0.0)

    def cache_output(self, y: Array) -> None:
        """Take ``y``, this layer's output computed by the layer before it (Sequential's
        :meth:`~xpnn.Dense.forward_relu`), as what backward's mask reads: ``y > 0`` exactly where
        the input was positive (NaN in both: False)."""
        self.x = y

    def backward(self, dout: Array) -> Array:
        x = self._cached("x")
        dx = numba_fast.relu_grad(x, dout) if self.fused else None
        if dx is not None:
            return dx
        xp = namespace(dout)
        dx = xp.astype(x > 0, dout.dtype)
        dx *= dout  # in place into the fresh mask (JAX rebinds): one temporary fewer
        return dx


class LeakyReLU(_Activation):
    """``y = x`` where ``x > 0``, else ``alpha * x`` (computed as ``max(x, alpha * x)`` for
    ``0 <= alpha <= 1`` and ``min`` above 1: the same numbers, without a slow ``where``)."""

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = check_number("LeakyReLU", "alpha", alpha, low=0.0)

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.x = x
        pick = xp.maximum if self.alpha <= 1.0 else xp.minimum
        return pick(x, self.alpha * x)

    def backward(self, dout: Array) -> Array:
        xp = namespace(dout)
        mask = xp.astype(self._cached("x") > 0, dout.dtype)
        return dout * (mask + (1.0 - mask) * self.alpha)  # exactly 1 or alpha

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(_Activation):
    """``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2``: no overflow for any x."""

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.y = 0.5 * (xp.tanh(0.5 * x) + 1.0)
        return self.y

    def backward(self, dout: Array) -> Array:
        y = self._cached("y")
        return dout * y * (1.0 - y)


class Tanh(_Activation):
    """``y = tanh(x)``; ``dy/dx = 1 - y**2``."""

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.y = xp.tanh(x)
        return self.y

    def backward(self, dout: Array) -> Array:
        y = self._cached("y")
        return dout * (1.0 - y * y)


class Softmax(_Activation):
    """Row-wise softmax of ``(batch, classes)`` scores, shifted by the row max for stability.

    Backward is the Jacobian-vector product ``dx = y * (dout - sum(dout * y))`` per row,
    never the (classes x classes) Jacobian the book builds per sample. ``fused`` (on by
    default): the row max and sums by NumPy's ufunc reduce (:mod:`xpnn.backend.numpy_fast`).
    """

    fused: bool = True

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        e = xp.exp(x - row_max(x, self.fused))
        self.y = e / row_sum(e, self.fused)
        return self.y

    def backward(self, dout: Array) -> Array:
        y = self._cached("y")
        return y * (dout - row_sum(dout * y, self.fused))

"""Activation layers: elementwise (ReLU, LeakyReLU, Sigmoid, Tanh) and Softmax."""

from __future__ import annotations

from typing import Any

from xpnn.backend import namespace
from xpnn.checks import check_array, check_floating
from xpnn.layers import Layer

Array = Any


class _Activation(Layer):
    def _check(self, x: Array) -> Any:
        check_array(type(self).__name__, x)
        check_floating(type(self).__name__, x)
        return namespace(x)


class ReLU(_Activation):
    """``y = max(x, 0)``; the gradient passes where ``x > 0`` (0 at the kink, as the book does)."""

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.x = x
        return xp.maximum(x, 0.0)

    def backward(self, dout: Array) -> Array:
        return namespace(dout).where(self.x > 0, dout, 0.0)


class LeakyReLU(_Activation):
    """``y = x`` where ``x > 0``, else ``alpha * x``."""

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = float(alpha)

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.x = x
        return xp.where(x > 0, x, self.alpha * x)

    def backward(self, dout: Array) -> Array:
        return namespace(dout).where(self.x > 0, dout, self.alpha * dout)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(_Activation):
    """``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2``: no overflow for any x."""

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.y = 0.5 * (xp.tanh(0.5 * x) + 1.0)
        return self.y

    def backward(self, dout: Array) -> Array:
        return dout * self.y * (1.0 - self.y)


class Tanh(_Activation):
    """``y = tanh(x)``; ``dy/dx = 1 - y**2``."""

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        self.y = xp.tanh(x)
        return self.y

    def backward(self, dout: Array) -> Array:
        return dout * (1.0 - self.y * self.y)


class Softmax(_Activation):
    """Row-wise softmax of ``(batch, classes)`` scores, shifted by the row max for stability.

    Backward is the Jacobian-vector product ``dx = y * (dout - sum(dout * y))`` per row,
    never the (classes x classes) Jacobian the book builds per sample.
    """

    def forward(self, x: Array) -> Array:
        xp = self._check(x)
        e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
        self.y = e / xp.sum(e, axis=-1, keepdims=True)
        return self.y

    def backward(self, dout: Array) -> Array:
        xp = namespace(dout)
        return self.y * (dout - xp.sum(dout * self.y, axis=-1, keepdims=True))

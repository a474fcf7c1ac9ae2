"""Activation layers over :mod:`xpnn.functional.activations`: ReLU, LeakyReLU, Sigmoid, Tanh,
Softmax."""

from __future__ import annotations

from typing import Any

from xpnn.checks import check_array, check_floating, check_number
from xpnn.functional import activations as fa
from xpnn.nn.layers import Layer

Array = Any


class _Activation(Layer):
    def options(self, x: Array) -> dict[str, Any]:
        check_array(type(self).__name__, x)
        check_floating(type(self).__name__, x)
        return {}


class ReLU(_Activation):
    """``y = max(x, 0)``; the gradient passes where ``x > 0`` (0 at the kink, as the book does).
    ``fused`` (on by default): where numba is installed, NumPy arrays take the backward in one
    pass without storing the mask (:func:`xpnn.kernels.dense.relu_grad`, same bits)."""

    function = fa.ReLU

    def options(self, x: Array) -> dict[str, Any]:
        super().options(x)
        return {"fused": self.fused}


class LeakyReLU(_Activation):
    """``y = x`` where ``x > 0``, else ``alpha * x``."""

    function = fa.LeakyReLU

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = check_number("LeakyReLU", "alpha", alpha, low=0.0)

    def options(self, x: Array) -> dict[str, Any]:
        super().options(x)
        return {"alpha": self.alpha}

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(_Activation):
    """``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2``: no overflow for any x."""

    function = fa.Sigmoid


class Tanh(_Activation):
    """``y = tanh(x)``; ``dy/dx = 1 - y**2``."""

    function = fa.Tanh


class Softmax(_Activation):
    """Softmax over the last axis (e.g. ``(batch, classes)`` scores):
    ``y_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x))``, shifted by the row max for
    stability; backward is the Jacobian-vector product ``dx = y * (dout - sum(dout * y))``.
    ``fused``: the row max and sums by NumPy's ufunc reduce."""

    function = fa.Softmax

    def options(self, x: Array) -> dict[str, Any]:
        super().options(x)
        return {"axis": -1, "fused": self.fused}

"""xpnn.testing.check_gradients on modules of the user's own: a Module differentiated by the
tape, a layer that writes only ``forward``, a module of two inputs; and it still catches a
wrong gradient there."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import functional as F
from xpnn.autograd import Function
from xpnn.testing import check_gradients

RNG = np.random.default_rng(8)


class Residual(xpnn.Module):
    def __init__(self) -> None:
        self.inp = xpnn.Dense(4, 5, seed=0, weight_regularizer_l2=0.01)
        self.block = xpnn.Dense(5, 5, seed=1)
        self.scale = xpnn.Parameter(np.full((5,), 0.7, np.float32), "scale")

    def forward(self, x: Any) -> Any:
        h = F.tanh(self.inp(x))
        return (h + F.tanh(self.block(h))) * self.scale


class TwoInputs(xpnn.Module):
    def __init__(self) -> None:
        self.left, self.right = xpnn.Dense(3, 2, seed=0), xpnn.Dense(4, 2, seed=1)

    def forward(self, a: Any, b: Any) -> Any:
        return F.tanh(self.left(a)) * self.right(b)


class Scale(xpnn.Layer):
    """A layer of the user's own with only ``forward`` (its backward comes from the tape)."""

    def __init__(self) -> None:
        self.s = xpnn.Parameter(np.array([0.5, -1.5, 2.0], np.float32), "s")

    def forward(self, x: Any) -> Any:
        return F.sigmoid(x * self.s)


def test_check_gradients_checks_a_residual_module_by_the_tape(bk: Any, to_bk: Any) -> None:
    errors = check_gradients(
        Residual().to(bk.name, dtype="float64"), to_bk(RNG.standard_normal((3, 4)), "float64")
    )
    assert set(errors) == {"input", "inp.weight", "inp.bias", "block.weight", "block.bias", "scale"}


def test_check_gradients_checks_each_input_of_a_two_input_module(bk: Any, to_bk: Any) -> None:
    a, b = to_bk(RNG.standard_normal((2, 3)), "float64"), to_bk(RNG.standard_normal((2, 4)), "float64")
    errors = check_gradients(TwoInputs().to(bk.name, dtype="float64"), (a, b))
    assert set(errors) == {"input0", "input1", "left.weight", "left.bias", "right.weight", "right.bias"}


def test_check_gradients_checks_a_layer_that_writes_only_forward(bk: Any, to_bk: Any) -> None:
    errors = check_gradients(
        Scale().to(bk.name, dtype="float64"), to_bk(RNG.standard_normal((4, 3)), "float64")
    )
    assert set(errors) == {"input", "s"}


def test_check_gradients_catches_a_wrong_gradient_inside_a_module() -> None:
    class Leaky(Function):  # a hand-written function whose input gradient is off by 10%
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return x * 2.0

        @staticmethod
        def backward(ctx: Any, g: Any) -> tuple[Any, ...]:
            return (g * 2.2,)

    class Wrong(Residual):
        def forward(self, x: Any) -> Any:
            return super().forward(Leaky.apply(x))

    with pytest.raises(AssertionError, match=r"dL/dinput: analytic and finite-difference gradients differ"):
        check_gradients(Wrong().to("numpy", dtype="float64"), RNG.standard_normal((3, 4)))


def test_check_gradients_refuses_float32_naming_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"inp.weight is float32"):
        check_gradients(Residual(), RNG.standard_normal((3, 4)))

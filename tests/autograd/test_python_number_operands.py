"""A Python number on one side of + - * / takes the tape's one-input path: the same values,
gradients and dtypes as the two-operand path (the number as a constant 0-d Tensor of the
tensor's dtype)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend

OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "t + c": lambda t, c: t + c,
    "c + t": lambda t, c: c + t,
    "t - c": lambda t, c: t - c,
    "c - t": lambda t, c: c - t,
    "t * c": lambda t, c: t * c,
    "c * t": lambda t, c: c * t,
    "t / c": lambda t, c: t / c,
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
@pytest.mark.parametrize("number", [0.3, -2, 7])
def test_a_number_operand_gives_the_values_and_gradients_of_a_0d_array_operand(
    bk: backend.Backend, name: str, number: float
) -> None:
    op = OPERATIONS[name]
    host = np.random.default_rng(0).standard_normal((3, 4))
    weights = backend.from_host(np.random.default_rng(1).standard_normal((3, 4)), bk)
    results = []
    for operand in (number, xpnn.Tensor(backend.from_host(np.asarray(number, np.float64), bk))):
        t = xpnn.Tensor(backend.from_host(host, bk), requires_grad=True)
        out = op(t, operand)
        (out * weights).sum().backward()
        assert out.dtype == bk.xp.float64 and out.node is not None and out.node.name == name[2].replace(
            "+", "add").replace("-", "sub").replace("*", "mul").replace("/", "div")  # fmt: skip
        results.append((backend.to_host(out.value), backend.to_host(t.grad)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_float32_stays_float32_with_a_number_operand(bk: backend.Backend, name: str) -> None:
    t = xpnn.Tensor(backend.from_host(np.ones((2, 2), np.float32), bk), requires_grad=True)
    out = OPERATIONS[name](t, 0.1)
    out.sum().backward()
    assert out.dtype == bk.xp.float32 and t.grad.dtype == bk.xp.float32


def test_nothing_is_recorded_with_a_number_under_no_grad_or_without_grad() -> None:
    t = xpnn.Tensor(np.ones(3), requires_grad=True)
    with xpnn.no_grad():
        assert (t * 2.0).node is None and not (t + 1).requires_grad
    assert (xpnn.Tensor(np.ones(3)) - 1.0).node is None


def test_booleans_and_numpy_scalars_still_take_the_checked_path() -> None:
    t = xpnn.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(xpnn.BackendMismatchError):
        t * True
    with pytest.raises(xpnn.DTypeError):
        t * np.float64(2.0)  # a float64 constant into float32: refused, as before

"""The recording namespace: ``array_namespace(tensor)`` gives the standard's functions, each
differentiable on Tensors (its recorded gradient equals central finite differences in float64
on every backend); functions without a gradient give plain arrays; calls without a Tensor are
the wrapped namespace's own. So plain Array API code is its own derivative."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import pytest

from tests.helpers.finite_differences import check_finite_differences, recorded_gradients
from xpnn import Tensor, backend


def normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def positive(*shape: int, seed: int = 0) -> np.ndarray:
    return 0.5 + np.random.default_rng(seed).random(shape)


def rec(t: Tensor) -> Any:
    """The recording namespace of ``t``, as plain Array API code finds it."""
    return array_api_compat.array_namespace(t)


def test_array_namespace_of_a_tensor_is_the_recording_namespace(bk):
    t = Tensor(backend.from_host(normal(2), bk))
    assert rec(t) is t.__array_namespace__() is backend.namespace(t)
    assert rec(t) is not bk.xp and "recording" in rec(t).__name__


# -- unary: (function, input values) --------------------------------------------------------------
UNARY = {
    "exp": (lambda xp, t: xp.exp(t), normal),
    "log": (lambda xp, t: xp.log(t), positive),
    "sqrt": (lambda xp, t: xp.sqrt(t), positive),
    "tanh": (lambda xp, t: xp.tanh(t), normal),
    "abs": (lambda xp, t: xp.abs(t), normal),
    "negative": (lambda xp, t: xp.negative(t), normal),
    "positive": (lambda xp, t: xp.positive(t) * 1.0, normal),
    "square": (lambda xp, t: xp.square(t), normal),
    "pow_number_exponent": (lambda xp, t: xp.pow(t, 3.0), normal),
    "pow_number_base": (lambda xp, t: xp.pow(2.0, t), normal),
    "clip": (lambda xp, t: xp.clip(t, min=-0.5, max=0.4), normal),
    "asarray": (lambda xp, t: xp.asarray(t) * 2.0, normal),
    "astype_float": (lambda xp, t: xp.astype(t, xp.float64) * t, normal),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_function_gradient_matches_finite_differences(name, bk):
    f, values = UNARY[name]
    check_finite_differences(bk, lambda t: f(rec(t), t), values(2, 3))


# -- binary, with a Tensor, a constant array or a Python number on either side ---------------------
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]


@pytest.mark.parametrize("name", BINARY)
def test_binary_function_of_two_tensors_with_broadcasting_matches_finite_differences(name, bk):
    def f(a, b):
        return getattr(rec(a), name)(a, b)

    check_finite_differences(bk, f, normal(2, 1, 3, seed=1), positive(4, 1, seed=2))


@pytest.mark.parametrize("side", ["constant_left", "constant_right"])
@pytest.mark.parametrize("name", BINARY)
def test_binary_function_with_a_constant_array_on_either_side_matches_finite_differences(name, side, bk):
    constant = backend.from_host(positive(3, seed=3), bk)

    def f(t):
        function = getattr(rec(t), name)
        return function(constant, t) if side == "constant_left" else function(t, constant)

    check_finite_differences(bk, f, positive(2, 3))


@pytest.mark.parametrize("side", ["number_left", "number_right"])
@pytest.mark.parametrize("name", BINARY)
def test_binary_function_with_a_python_number_on_either_side_matches_finite_differences(name, side, bk):
    def f(t):
        function = getattr(rec(t), name)
        return function(0.75, t) if side == "number_left" else function(t, 0.75)

    check_finite_differences(bk, f, positive(2, 3))


@pytest.mark.parametrize(("a_shape", "b_shape"), [((3,), (3,)), ((2, 3), (3, 4)), ((2, 2, 3), (1, 3, 2))])
def test_matmul_function_matches_finite_differences(a_shape, b_shape, bk):
    check_finite_differences(bk, lambda a, b: rec(a).matmul(a, b), normal(*a_shape), normal(*b_shape, seed=1))


def test_matmul_with_a_constant_matrix_on_the_left_matches_finite_differences(bk):
    constant = backend.from_host(normal(4, 2, seed=5), bk)
    check_finite_differences(bk, lambda t: rec(t).matmul(constant, t), normal(2, 3))


def test_where_function_matches_finite_differences_with_tensors_arrays_and_numbers(bk):
    condition = backend.from_host(np.array([[True, False, True], [False, True, True]]), bk)
    constant = backend.from_host(normal(2, 3, seed=3), bk)

    def f(a, b):
        xp = rec(a)
        return xp.where(condition, a, b) + xp.where(condition, constant, a) + xp.where(condition, 0.5, b)

    check_finite_differences(bk, f, normal(2, 3, seed=1), normal(3, seed=2))


# -- reductions --------------------------------------------------------------------------------------
REDUCTIONS = {
    "sum": lambda xp, t: xp.sum(t, axis=(0, 2)),
    "sum_with_dtype": lambda xp, t: xp.sum(t, axis=1, dtype=xp.float64),
    "mean": lambda xp, t: xp.mean(t, axis=-1, keepdims=True),
    "max": lambda xp, t: xp.max(t, axis=0),
    "min": lambda xp, t: xp.min(t),
    "var": lambda xp, t: xp.var(t, axis=(1, 2)),
    "var_correction": lambda xp, t: xp.var(t, axis=0, correction=1),
    "std": lambda xp, t: xp.std(t, axis=1, keepdims=True),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_function_gradient_matches_finite_differences(name, bk):
    check_finite_differences(bk, lambda t: REDUCTIONS[name](rec(t), t), normal(3, 2, 2))


# -- shapes, joining and gathering ---------------------------------------------------------------------
SHAPES = {
    "reshape": lambda xp, t: xp.reshape(t, (4, 3)),
    "permute_dims": lambda xp, t: xp.permute_dims(t, (2, 0, 1)),
    "matrix_transpose": lambda xp, t: xp.matrix_transpose(t),
    "expand_dims": lambda xp, t: xp.expand_dims(t, axis=1),
    "squeeze": lambda xp, t: xp.squeeze(xp.expand_dims(t, axis=0), axis=0),
    "moveaxis": lambda xp, t: xp.moveaxis(t, 0, -1),
    "broadcast_to": lambda xp, t: xp.broadcast_to(t, (2, 3, 2, 2)),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shape_function_gradient_matches_finite_differences(name, bk):
    check_finite_differences(bk, lambda t: SHAPES[name](rec(t), t), normal(3, 2, 2))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_function_matches_finite_differences(axis, bk):
    check_finite_differences(
        bk, lambda a, b: rec(a).stack([a, b, a], axis=axis), normal(2, 3), normal(2, 3, seed=1)
    )


@pytest.mark.parametrize("axis", [0, 1, None])
def test_concat_function_matches_finite_differences(axis, bk):
    check_finite_differences(
        bk, lambda a, b: rec(a).concat([a, b], axis=axis), normal(2, 3), normal(2, 3, seed=1)
    )


def test_stack_and_concat_with_a_constant_array_first_send_gradients_to_the_tensors(bk):
    constant = backend.from_host(normal(2, 3, seed=2), bk)

    def f(t):
        xp = rec(t)
        return xp.stack([constant, t], axis=0) * xp.concat([constant, t], axis=1)[None, :, :3]

    check_finite_differences(bk, f, normal(2, 3))


def _indices(bk: backend.Backend, values: list) -> Any:
    return backend.from_host(np.asarray(values, dtype=np.int64), bk)


def test_take_along_an_axis_with_repeated_indices_matches_finite_differences(bk):
    index = _indices(bk, [2, 0, 2, 2])
    check_finite_differences(bk, lambda t: rec(t).take(t, index, axis=1), normal(2, 3))


def test_take_of_a_vector_without_axis_matches_finite_differences(bk):
    index = _indices(bk, [1, 1, 3])
    check_finite_differences(bk, lambda t: rec(t).take(t, index), normal(4))


@pytest.mark.parametrize("axis", [0, 1])
def test_take_along_axis_with_repeated_indices_matches_finite_differences(axis, bk):
    index = _indices(bk, [[0, 2, 2], [1, 1, 1]] if axis == 1 else [[0, 1, 1], [0, 0, 1], [0, 0, 0]])
    check_finite_differences(bk, lambda t: rec(t).take_along_axis(t, index, axis=axis), normal(2, 3))


def test_take_along_axis_adds_the_gradients_of_repeated_picks(bk):
    index = _indices(bk, [[1, 1, 0]])
    _, (grad,) = recorded_gradients(
        bk, lambda t: rec(t).take_along_axis(t, index, axis=1), [normal(1, 3)], np.ones((1, 3))
    )
    np.testing.assert_array_equal(grad, [[1.0, 2.0, 0.0]])


# -- what has no gradient --------------------------------------------------------------------------------
NO_GRADIENT = {
    "argmax": lambda xp, t: xp.argmax(t, axis=1),
    "zeros_like": lambda xp, t: xp.zeros_like(t),
    "greater": lambda xp, t: xp.greater(t, 0.0),
    "isfinite": lambda xp, t: xp.isfinite(t),
    "astype_integer": lambda xp, t: xp.astype(t, xp.int64),
}


@pytest.mark.parametrize("name", sorted(NO_GRADIENT))
def test_function_without_a_gradient_returns_a_plain_array_of_the_namespace(name, bk):
    t = Tensor(backend.from_host(normal(2, 3), bk), requires_grad=True)
    out = NO_GRADIENT[name](rec(t), t)
    assert not isinstance(out, Tensor)
    assert array_api_compat.array_namespace(out) is bk.xp


def test_a_call_without_any_tensor_is_the_wrapped_namespace_own(bk):
    xp = rec(Tensor(backend.from_host(normal(2), bk)))
    a = backend.from_host(normal(2, 3), bk)
    out = xp.exp(a)
    assert not isinstance(out, Tensor)
    np.testing.assert_array_equal(backend.to_host(out), backend.to_host(bk.xp.exp(a)))


def test_constants_and_dtypes_of_the_namespace_pass_through(bk):
    xp = rec(Tensor(backend.from_host(normal(2), bk)))
    assert xp.float32 == bk.xp.float32 and xp.pi == bk.xp.pi


def test_plain_array_api_code_differentiates_itself(bk):
    def logistic_loss(x: Any, w: Any) -> Any:  # written once against the standard, for any array
        xp = array_api_compat.array_namespace(x, w)
        z = xp.matmul(x, w)
        return xp.mean(xp.log(1.0 + xp.exp(-z)) + 0.01 * xp.sum(xp.square(w)))

    check_finite_differences(bk, logistic_loss, normal(4, 3), normal(3, seed=1))

"""Named errors of the autodiff engine: each an XpnnError that keeps its built-in base, raised
before anything is computed, its message naming the culprit (both shapes, both backends,
both dtypes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import Tensor, backend
from xpnn import functional as F
from xpnn.errors import BackendMismatchError, DTypeError, GradientError, ShapeError


def leaf(bk: backend.Backend, *shape: int, dtype: str = "float64", requires_grad: bool = True) -> Tensor:
    values = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    return Tensor(backend.from_host(values, bk), requires_grad=requires_grad)


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (GradientError, RuntimeError),
        (ShapeError, ValueError),
        (DTypeError, TypeError),
        (BackendMismatchError, TypeError),
    ],
)
def test_each_autograd_error_is_an_xpnn_error_and_keeps_its_builtin_base(error, builtin):
    assert issubclass(error, xpnn.XpnnError) and issubclass(error, builtin)


# -- backward ------------------------------------------------------------------------------------------
def test_backward_of_a_tensor_that_needs_no_gradient_raises_gradient_error(bk):
    t = leaf(bk, 2, requires_grad=False)
    with pytest.raises(GradientError, match="does not require a gradient"):
        (t * 2.0).sum().backward()


def test_backward_of_a_result_made_under_no_grad_raises_gradient_error(bk):
    t = leaf(bk, 2)
    with xpnn.no_grad():
        y = (t * 2.0).sum()
    with pytest.raises(GradientError, match="no_grad"):
        y.backward()


def test_a_second_backward_through_a_consumed_graph_raises_gradient_error(bk):
    t = leaf(bk, 3)
    y = (t.exp() * t).sum()
    y.backward()
    with pytest.raises(GradientError, match="retain_graph=True"):
        y.backward()


def test_backward_through_a_consumed_part_of_a_larger_graph_raises_gradient_error(bk):
    t = leaf(bk, 3)
    hidden = t * 2.0
    hidden.sum().backward()
    with pytest.raises(GradientError, match="already consumed"):
        (hidden * 3.0).sum().backward()


def test_backward_of_a_non_scalar_without_grad_raises_gradient_error(bk):
    y = leaf(bk, 2, 3) * 2.0
    with pytest.raises(GradientError, match=r"shape \(2, 3\)"):
        y.backward()


def test_backward_with_a_grad_of_the_wrong_shape_raises_shape_error(bk):
    y = leaf(bk, 2, 3) * 2.0
    with pytest.raises(ShapeError, match=r"expected grad of shape \(2, 3\), got \(3, 2\)"):
        y.backward(backend.from_host(np.ones((3, 2)), bk))


def test_backward_with_a_grad_of_the_wrong_dtype_raises_dtype_error(bk):
    y = leaf(bk, 2, 3) * 2.0
    with pytest.raises(DTypeError, match="float32"):
        y.backward(backend.from_host(np.ones((2, 3), dtype=np.float32), bk))


def test_backward_with_a_grad_of_another_backend_raises_backend_mismatch_error():
    torch = pytest.importorskip("torch", reason="torch is not installed: needs a second backend")
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(BackendMismatchError, match=r"'torch'.*'numpy'"):
        y.backward(torch.ones((2, 3), dtype=torch.float64))


def test_requires_grad_on_an_integer_tensor_raises_dtype_error(bk):
    with pytest.raises(DTypeError, match="int64"):
        Tensor(backend.from_host(np.arange(3), bk), requires_grad=True)


def test_a_tensor_of_something_that_is_not_an_array_raises_backend_mismatch_error():
    with pytest.raises(BackendMismatchError, match="list"):
        Tensor([1.0, 2.0])


# -- shapes: every binary operation names both shapes --------------------------------------------------
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b,
    "maximum": F.maximum,
    "minimum": F.minimum,
    "where": lambda a, b: F.where(a > 0.0, a, b),
    "concat": lambda a, b: F.concat([a, b], axis=1),
    "stack": lambda a, b: F.stack([a, b]),
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_a_shape_mismatch_in_a_binary_operation_raises_shape_error_naming_both_shapes(op, bk):
    a, b = leaf(bk, 2, 3), leaf(bk, 4, 2)
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(4, 2\)"):
        BINARY[op](a, b)


AXIS_OUT_OF_RANGE = {
    "sum": lambda t: t.sum(axis=2),
    "mean_tuple": lambda t: t.mean(axis=(0, 2)),
    "max": lambda t: t.max(axis=-3),
    "min": lambda t: t.min(axis=2),
    "var": lambda t: t.var(axis=2),
    "transpose": lambda t: t.transpose(3, 0),
    "expand_dims": lambda t: t.expand_dims(3),
    "squeeze": lambda t: t.expand_dims(0).squeeze(3),
    "stack": lambda t: F.stack([t, t], axis=3),
    "concat": lambda t: F.concat([t, t], axis=2),
    "take": lambda t: t.__array_namespace__().take(t, _zeros_index(t, (2,)), axis=2),
    "take_along_axis": lambda t: t.__array_namespace__().take_along_axis(t, _zeros_index(t, (2, 3)), axis=2),
    "moveaxis": lambda t: t.__array_namespace__().moveaxis(t, 0, 2),
}


def _zeros_index(t: Tensor, shape: tuple[int, ...]) -> Any:
    xp = backend.namespace(t.value)
    return xp.zeros(shape, dtype=xp.int64, device=t.device)


@pytest.mark.parametrize("op", sorted(AXIS_OUT_OF_RANGE))
def test_an_axis_out_of_range_raises_shape_error_instead_of_wrapping_round(op, bk):
    with pytest.raises(ShapeError, match=r"out of range|not a permutation"):
        AXIS_OUT_OF_RANGE[op](leaf(bk, 2, 3))


# -- two backends, two dtypes --------------------------------------------------------------------------
MIXED = {
    "add": lambda a, b: a + b,
    "matmul": lambda a, b: a @ b.T,
    "maximum": F.maximum,
    "where": lambda a, b: F.where(a > 0.0, a, b),
    "concat": lambda a, b: F.concat([a, b]),
    "linear": lambda a, b: F.linear(a, b.T),
    "linear_bias": lambda a, b: F.linear(a, (a.T @ a).detach(), b[0, ...]),
    "conv2d": lambda a, b: F.conv2d(a.reshape(1, 1, 3, 3), b.reshape(1, 1, 3, 3)),
    "batch_norm": lambda a, b: F.batch_norm(a, None, None, b[0, ...], b[1, ...], training=True),
}


@pytest.mark.parametrize("op", sorted(MIXED))
def test_float32_with_float64_in_one_operation_raises_dtype_error(op, bk):
    a, b = leaf(bk, 3, 3, dtype="float32"), leaf(bk, 3, 3, dtype="float64")
    with pytest.raises(DTypeError, match=r"float32.*float64|float64.*float32"):
        MIXED[op](a, b)


@pytest.mark.parametrize("op", sorted(MIXED))
def test_numpy_with_torch_in_one_operation_raises_backend_mismatch_error(op):
    torch = pytest.importorskip("torch", reason="torch is not installed: needs a second backend")
    a = Tensor(np.ones((3, 3)), requires_grad=True)
    b = Tensor(torch.ones((3, 3), dtype=torch.float64), requires_grad=True)
    with pytest.raises(BackendMismatchError, match=r"numpy.*torch|torch.*numpy"):
        MIXED[op](a, b)


def test_a_numpy_scalar_of_another_float_dtype_raises_dtype_error():
    t = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(DTypeError, match="float64"):
        t * np.float64(2.0)  # a NumPy scalar is an array here, unlike a Python float


def test_a_tensor_exponent_raises_dtype_error(bk):
    t = leaf(bk, 2)
    with pytest.raises(DTypeError, match="Python number"):
        t**t


def test_a_negative_base_to_the_power_of_a_tensor_raises_dtype_error(bk):
    with pytest.raises(DTypeError, match="positive"):
        (-2.0) ** leaf(bk, 2)

"""float32 stays float32 and float64 stays float64 through every operation, values and
gradients, Python-number operands included; ``no_grad`` records nothing; ``detach`` cuts the
graph without a copy; a Parameter is a Tensor that requires grad, and a frozen one keeps
``grad`` None; backward adds into ``.grad``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import Tensor, backend
from xpnn import functional as F


class Leaves:
    """Makes leaves of one backend and dtype (values in [0.5, 1.5): every function defined)."""

    def __init__(self, bk: backend.Backend, dtype: str) -> None:
        self.bk, self.dtype, self.made = bk, dtype, []
        self.rng = np.random.default_rng(0)

    def __call__(self, *shape: int) -> Tensor:
        values = (0.5 + self.rng.random(shape)).astype(self.dtype)
        t = Tensor(backend.from_host(values, self.bk), requires_grad=True)
        self.made.append(t)
        return t

    def constant(self, *shape: int) -> Any:
        """An array of the dtype that is no leaf (a loss's target, a condition's source)."""
        return backend.from_host((0.5 + self.rng.random(shape)).astype(self.dtype), self.bk)

    def labels(self, *values: int) -> Any:
        return backend.from_host(np.asarray(values, dtype=np.int64), self.bk)


OPERATIONS: dict[str, Callable[[Leaves], Tensor]] = {
    "add_number": lambda p: p(2, 3) + 1.5,
    "number_add": lambda p: 1.5 + p(2, 3),
    "number_sub": lambda p: 2.0 - p(2, 3),
    "mul_number": lambda p: p(2, 3) * 0.1,
    "number_div": lambda p: 3.0 / p(2, 3),
    "div_tensor": lambda p: p(2, 3) / p(3),
    "pow_int": lambda p: p(2, 3) ** 3,
    "pow_float": lambda p: p(2, 3) ** 0.5,
    "number_pow": lambda p: 2.0 ** p(2, 3),
    "neg": lambda p: -p(2, 3),
    "matmul": lambda p: p(2, 3) @ p(3, 4),
    "exp": lambda p: p(2, 3).exp(),
    "log": lambda p: p(2, 3).log(),
    "sqrt": lambda p: p(2, 3).sqrt(),
    "tanh": lambda p: p(2, 3).tanh(),
    "abs": lambda p: p(2, 3).abs(),
    "clip": lambda p: p(2, 3).clip(0.7, 1.2),
    "sum": lambda p: p(2, 3).sum(axis=1),
    "mean": lambda p: p(2, 3).mean(),
    "max": lambda p: p(2, 3).max(axis=0),
    "min": lambda p: p(2, 3).min(axis=(0, 1)),
    "var": lambda p: p(2, 3).var(axis=1),
    "reshape_transpose": lambda p: p(2, 3).reshape(3, 2).T,
    "slice": lambda p: p(3, 3)[1:, :2],
    "integer_index": lambda p: p(3, 2)[p.labels(0, 0, 2)],
    "relu": lambda p: F.relu(p(2, 3) - 1.0),
    "leaky_relu": lambda p: F.leaky_relu(p(2, 3) - 1.0, 0.2),
    "sigmoid": lambda p: F.sigmoid(p(2, 3)),
    "F_tanh": lambda p: F.tanh(p(2, 3)),
    "softmax": lambda p: F.softmax(p(2, 3), axis=0),
    "log_softmax": lambda p: F.log_softmax(p(2, 3)),
    "linear": lambda p: F.linear(p(2, 3), p(3, 4), p(4)),
    "conv2d": lambda p: F.conv2d(p(1, 2, 4, 4), p(3, 2, 3, 3), p(3), padding=1),
    "max_pool2d": lambda p: F.max_pool2d(p(1, 2, 4, 4), 2),
    "avg_pool2d": lambda p: F.avg_pool2d(p(1, 2, 5, 5), 2, ceil_mode=True),
    "global_avg_pool2d": lambda p: F.global_avg_pool2d(p(1, 2, 3, 3)),
    "batch_norm": lambda p: F.batch_norm(p(4, 3), None, None, p(3), p(3), training=True),
    "dropout": lambda p: F.dropout(p(4, 5), 0.5, key=(1, 2)),
    "cross_entropy": lambda p: F.cross_entropy(p(3, 4), p.labels(0, 3, 1), label_smoothing=0.1),
    "mse": lambda p: F.mse(p(2, 3), p.constant(2, 3)),  # the target is a constant
    "concat": lambda p: F.concat([p(2, 3), p(1, 3)]),
    "stack": lambda p: F.stack([p(2, 3), p(2, 3)], axis=1),
    "where": lambda p: F.where(p.constant(2, 3) > 1.0, p(2, 3), 0.0),
    "maximum_number": lambda p: F.maximum(p(2, 3), 1.0),
    "minimum": lambda p: F.minimum(p(2, 3), p(3)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_the_dtype_of_values_and_gradients_is_kept_through_every_operation(op, dtype, bk):
    make = Leaves(bk, dtype)
    y = OPERATIONS[op](make)
    expected = getattr(bk.xp, dtype)
    assert y.dtype == expected, f"{op}: {dtype} became {y.dtype}"
    seed = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    y.backward(backend.from_host(seed, bk))
    for k, t in enumerate(make.made):
        assert t.grad is not None and t.grad.dtype == expected, f"{op}: gradient {k} of dtype {t.grad.dtype}"


# -- grad mode -------------------------------------------------------------------------------------------
def _leaf(bk: backend.Backend, *shape: int) -> Tensor:
    values = np.random.default_rng(0).standard_normal(shape)
    return Tensor(backend.from_host(values, bk), requires_grad=True)


def test_no_grad_records_nothing_from_operators_methods_functions_and_the_namespace(bk):
    t, w = _leaf(bk, 2, 3), _leaf(bk, 3, 2)
    with xpnn.no_grad():
        results = [
            t * 2.0,
            t @ w,
            t.exp().sum(axis=0),
            F.relu(t),
            F.linear(t, w),
            backend.namespace(t).maximum(t, 0.0),
            t[0, ...],
        ]
        assert not xpnn.autograd.is_grad_enabled()
    assert all(not r.requires_grad and r.node is None for r in results)
    assert xpnn.autograd.is_grad_enabled()


def test_no_grad_computes_the_same_values(bk):
    t = _leaf(bk, 2, 3)
    with xpnn.no_grad():
        quiet = F.softmax(t * 3.0).value
    np.testing.assert_array_equal(backend.to_host(quiet), backend.to_host(F.softmax(t * 3.0).value))


def test_enable_grad_records_again_inside_no_grad(bk):
    t = _leaf(bk, 2)
    with xpnn.no_grad(), xpnn.autograd.enable_grad():
        y = (t * t).sum()
    y.backward()
    np.testing.assert_allclose(backend.to_host(t.grad), 2.0 * backend.to_host(t.value), rtol=1e-15)


def test_no_grad_restores_grad_mode_after_an_exception():
    with pytest.raises(KeyError), xpnn.no_grad():
        raise KeyError("inside")
    assert xpnn.autograd.is_grad_enabled()


# -- detach ---------------------------------------------------------------------------------------------
def test_detach_is_the_same_array_cut_from_the_graph(bk):
    t = _leaf(bk, 2, 3)
    y = t * 2.0
    cut = y.detach()
    assert cut.value is y.value and not cut.requires_grad and cut.node is None


def test_no_gradient_flows_through_a_detached_tensor(bk):
    t = _leaf(bk, 3)
    (t * t.detach()).sum().backward()  # d/dt of t * constant(t) = t, not 2t
    np.testing.assert_array_equal(backend.to_host(t.grad), backend.to_host(t.value))


# -- Parameter -------------------------------------------------------------------------------------------
def test_a_parameter_is_a_tensor_that_requires_grad(bk):
    p = xpnn.Parameter(backend.from_host(np.ones(3), bk), name="w")
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf and p.grad is None and p.name == "w"


def test_a_frozen_parameter_keeps_grad_none_while_the_others_get_theirs(bk):
    w = xpnn.Parameter(backend.from_host(np.full(3, 2.0), bk), name="w")
    frozen = xpnn.Parameter(backend.from_host(np.full(3, 5.0), bk), name="frozen")
    frozen.requires_grad = False
    (w * frozen).sum().backward()
    assert frozen.grad is None
    np.testing.assert_array_equal(backend.to_host(w.grad), [5.0, 5.0, 5.0])


def test_a_graph_of_frozen_parameters_only_cannot_backward(bk):
    frozen = xpnn.Parameter(backend.from_host(np.ones(3), bk), requires_grad=False)
    with pytest.raises(xpnn.errors.GradientError):
        (frozen * 2.0).sum().backward()


# -- accumulation ----------------------------------------------------------------------------------------
def test_backward_adds_into_grad_across_calls(bk):
    t = _leaf(bk, 3)
    (t * 2.0).sum().backward()
    (t * 3.0).sum().backward()
    np.testing.assert_array_equal(backend.to_host(t.grad), [5.0, 5.0, 5.0])


def test_a_leaf_used_by_several_nodes_gets_the_sum_of_their_gradients(bk):
    t = _leaf(bk, 3)
    (t * 2.0 + t.exp() + t).sum().backward()
    np.testing.assert_allclose(backend.to_host(t.grad), 3.0 + np.exp(backend.to_host(t.value)), rtol=1e-15)


def test_backward_of_a_leaf_itself_sets_its_grad_to_the_seed(bk):
    t = _leaf(bk, 2)
    t.backward(backend.from_host(np.array([3.0, 4.0]), bk))
    np.testing.assert_array_equal(backend.to_host(t.grad), [3.0, 4.0])

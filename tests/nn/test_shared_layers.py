"""A layer used twice gets both gradients: in ``Sequential([d, Tanh(), d])`` and in a Module
calling one Dense twice, the weight gradient is the true one (finite differences and torch),
not the last call's alone (issue 22: -0.355 where the true value is -1.431)."""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn import functional as F
from xpnn.testing import check_gradients

RNG = np.random.default_rng(22)
X = RNG.standard_normal((4, 3))
DY = RNG.standard_normal((4, 3))  # the upstream gradient dL/dy


class CalledTwice(xpnn.Module):
    """``d(tanh(d(x)))``: one Dense called twice in a graph."""

    def __init__(self) -> None:
        self.d = xpnn.Dense(3, 3, seed=5)

    def forward(self, x: Any) -> Any:
        return self.d(F.tanh(self.d(x)))


def _torch_weight_gradient(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """dL/dW of ``L = sum(d(tanh(d(x))) * dy)`` by torch.autograd, W (n_in, n_out) as Dense's."""
    torch = require_torch("this test compares the shared layer's gradient with torch.autograd")
    w = torch.tensor(weight, requires_grad=True)
    b = torch.tensor(bias)
    x = torch.tensor(X)
    y = torch.tanh(x @ w + b) @ w + b
    (y * torch.tensor(DY)).sum().backward()
    return w.grad.numpy()


def test_a_dense_used_twice_in_sequential_passes_the_finite_difference_check(bk: Any, to_bk: Any) -> None:
    d = xpnn.Dense(3, 3)
    model = xpnn.Sequential([d, xpnn.Tanh(), d], seed=5).to(bk.name, dtype="float64")
    errors = check_gradients(model, to_bk(X, "float64"))
    assert set(errors) == {"input", "0.weight", "0.bias"}


def test_a_dense_called_twice_in_a_module_passes_the_finite_difference_check(bk: Any, to_bk: Any) -> None:
    errors = check_gradients(CalledTwice().to(bk.name, dtype="float64"), to_bk(X, "float64"))
    assert set(errors) == {"input", "d.weight", "d.bias"}


def test_sequential_backward_of_a_shared_dense_equals_torch() -> None:
    d = xpnn.Dense(3, 3)
    model = xpnn.Sequential([d, xpnn.Tanh(), d], seed=5).to("numpy", dtype="float64")
    expected = _torch_weight_gradient(d.weight.value, d.bias.value)
    model.forward(X)
    model.backward(DY)
    np.testing.assert_allclose(d.weight.grad, expected, rtol=1e-10)


def test_the_tape_through_a_module_calling_a_dense_twice_equals_torch(bk: Any, to_bk: Any) -> None:
    net = CalledTwice().to(bk.name, dtype="float64")
    expected = _torch_weight_gradient(backend.to_host(net.d.weight.value), backend.to_host(net.d.bias.value))
    (net(to_bk(X, "float64")) * to_bk(DY, "float64")).sum().backward()
    np.testing.assert_allclose(backend.to_host(net.d.weight.grad), expected, rtol=1e-10)


def test_the_shared_gradient_is_the_sum_of_both_calls_not_the_last_one() -> None:
    # the old per-layer state kept only the second call's contribution: the sum must differ from it
    net = CalledTwice().to("numpy", dtype="float64")
    w, b = net.d.weight.value, net.d.bias.value
    hidden = np.tanh(X @ w + b)
    last_call_only = hidden.T @ DY
    (net(X) * DY).sum().backward()
    first_call = X.T @ ((DY @ w.T) * (1.0 - hidden**2))
    np.testing.assert_allclose(net.d.weight.grad, last_call_only + first_call, rtol=1e-12)
    assert not np.allclose(net.d.weight.grad, last_call_only)

"""Gradients of Tensor code three ways: recorded by the tape, by central finite differences
in float64, and by torch.autograd, so a test states one comparison in one line.

``f(*tensors) -> Tensor`` is any composition of Tensor operations, :mod:`xpnn.functional` or
recording-namespace calls; the scalar differentiated is ``sum(f(...) * upstream)`` with a
*random* upstream gradient (a plain ``sum`` hides errors: softmax's sum has zero gradient).
Inputs are host NumPy arrays, moved onto the backend under test; constants (labels, masks,
indices) are closed over by ``f``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tests.helpers.optional import require_torch
from xpnn import Tensor, backend, no_grad
from xpnn.testing import assert_close

Array = Any
TensorFunction = Callable[..., Tensor]


def upstream_for(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    """A random float64 dL/dy of ``shape`` (reproducible)."""
    return np.random.default_rng(seed).standard_normal(shape)


def recorded_gradients(
    bk: backend.Backend, f: TensorFunction, inputs: Sequence[np.ndarray], upstream: np.ndarray | None = None
) -> tuple[Tensor, list[np.ndarray]]:
    """``(y, [dL/dinput, ...])`` from one backward through the tape, on ``bk``: ``y = f(*inputs)``
    (each input a leaf that requires grad), ``L = sum(y * upstream)``; gradients on the host."""
    leaves = [Tensor(backend.from_host(np.asarray(a), bk), requires_grad=True) for a in inputs]
    y = f(*leaves)
    seed = upstream_for(y.shape) if upstream is None else upstream
    y.backward(backend.from_host(np.asarray(seed, dtype=backend.to_host(y.value).dtype), bk))
    missing = [i for i, t in enumerate(leaves) if t.grad is None]
    assert not missing, f"backward left no gradient for inputs {missing}"
    return y, [backend.to_host(t.grad) for t in leaves]


def numeric_gradients(
    bk: backend.Backend,
    f: TensorFunction,
    inputs: Sequence[np.ndarray],
    upstream: np.ndarray,
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """Central differences ``(L(a + eps) - L(a - eps)) / (2 eps)`` of ``L = sum(f(...) * upstream)``
    for every element of every input (float64, nothing recorded)."""

    def loss(values: list[np.ndarray]) -> float:
        with no_grad():
            y = f(*(Tensor(backend.from_host(v, bk)) for v in values))
        return float((backend.to_host(y.value) * upstream).sum())

    grads = []
    for k in range(len(inputs)):
        values = [np.array(v, dtype=np.float64) for v in inputs]
        grad = np.zeros_like(values[k])
        flat, point = grad.reshape(-1), values[k].reshape(-1)
        for i in range(point.size):
            start = point[i]
            point[i] = start + eps
            plus = loss(values)
            point[i] = start - eps
            minus = loss(values)
            point[i] = start
            flat[i] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def check_finite_differences(
    bk: backend.Backend,
    f: TensorFunction,
    *inputs: np.ndarray,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    eps: float = 1e-6,
) -> list[np.ndarray]:
    """Assert the recorded gradient of every input equals central finite differences (float64);
    returns the recorded gradients."""
    for a in inputs:
        assert np.asarray(a).dtype == np.float64, "finite differences need float64 inputs"
    y, grads = recorded_gradients(bk, f, inputs)
    assert backend.dtype_name(y.dtype) == "float64", f"f turned float64 into {y.dtype}"
    upstream = upstream_for(y.shape)
    for k, (analytic, numeric) in enumerate(
        zip(grads, numeric_gradients(bk, f, inputs, upstream, eps), strict=True)
    ):
        assert analytic.shape == numeric.shape, f"input {k}: gradient shape {analytic.shape}"
        assert_close(analytic, numeric, rtol=rtol, atol=atol, what=f"dL/dinput{k} vs finite differences")
    return grads


def torch_gradients(
    f: Callable[..., Any], inputs: Sequence[np.ndarray], upstream: np.ndarray | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(y, [dL/dinput, ...])`` of the torch function ``f`` by torch.autograd (CPU, the inputs'
    dtype), ``L = sum(y * upstream)`` with the same upstream as :func:`recorded_gradients`."""
    torch = require_torch()
    leaves = [torch.tensor(np.asarray(a), requires_grad=True) for a in inputs]
    y = f(*leaves)
    seed = upstream_for(tuple(y.shape)) if upstream is None else upstream
    y.backward(torch.tensor(np.asarray(seed), dtype=y.dtype))
    return y.detach().numpy(), [t.grad.numpy() for t in leaves]


def check_matches_torch(
    bk: backend.Backend,
    f: TensorFunction,
    f_torch: Callable[..., Any],
    *inputs: np.ndarray,
    rtol: float | None = None,
    atol: float = 0.0,
) -> list[np.ndarray]:
    """Assert ``f`` on ``bk`` equals ``f_torch`` in forward and in every input's gradient
    (``rtol`` by dtype: 1e-10 float64, 1e-4 float32); returns xpnn's gradients."""
    if rtol is None:
        rtol = 1e-10 if np.asarray(inputs[0]).dtype == np.float64 else 1e-4
    expected_y, expected = torch_gradients(f_torch, inputs)
    y, grads = recorded_gradients(bk, f, inputs)
    assert_close(y.value, expected_y, rtol=rtol, atol=atol, what="forward vs torch")
    for k, (got, want) in enumerate(zip(grads, expected, strict=True)):
        assert got.dtype == want.dtype, f"input {k}: gradient dtype {got.dtype}, torch's {want.dtype}"
        assert_close(got, want, rtol=rtol, atol=atol, what=f"dL/dinput{k} vs torch.autograd")
    return grads

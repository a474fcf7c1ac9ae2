"""Checking a differentiable function three ways: against torch, against central finite
differences, and its hand-written backward against the tape's gradient of its plain forward."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import xpnn
from xpnn import backend
from xpnn.testing import assert_close

Array = Any


def close(actual: Array, expected: Any, rtol: float, what: str = "") -> None:
    """Elementwise within ``rtol`` of the expected values, with ``rtol * max|expected|`` as the
    absolute floor (a gradient entry that is 0 in exact arithmetic is rounding noise in both)."""
    host = expected.detach().numpy() if hasattr(expected, "detach") else backend.to_host(expected)
    floor = rtol * float(np.max(np.abs(host))) if host.size else 0.0
    assert_close(actual, host, rtol=rtol, atol=floor, what=what)


def gradients(f: Callable[..., Any], arrays: Sequence[Array], dy: Array) -> tuple[Any, list[Array]]:
    """``f(*tensors)`` and the gradient of ``sum(f * dy)`` for each array (as leaf Tensors)."""
    leaves = [xpnn.Tensor(a, requires_grad=True) for a in arrays]
    out = f(*leaves)
    out.backward(dy)
    return out.value, [leaf.grad for leaf in leaves]


def finite_differences(
    f: Callable[..., Any], arrays: Sequence[Array], dy: Array, eps: float = 1e-6
) -> list[Any]:
    """Central differences of ``sum(f(*arrays) * dy)`` for each array, as host arrays."""
    bk = backend.resolve(backend.backend_name(arrays[0]))
    host = [backend.to_host(a) for a in arrays]
    weights = backend.to_host(dy)

    def scalar(values: list[Any]) -> float:
        with xpnn.no_grad():
            out = f(*(backend.from_host(v, bk) for v in values))
        return float((backend.to_host(out.value) * weights).sum())

    found = []
    for k, value in enumerate(host):
        grad = np.zeros_like(value)
        for i in range(value.size):
            for sign in (1.0, -1.0):
                moved = [v.copy() for v in host]
                moved[k].reshape(-1)[i] += sign * eps
                grad.reshape(-1)[i] += sign * scalar(moved) / (2 * eps)
        found.append(grad)
    return found


def handwritten_and_recorded(
    function: Any,
    arrays: Sequence[Array],
    options: dict[str, Any],
    dy: Array,
    needs: Sequence[bool] | None = None,
) -> tuple[list[Any], list[Any]]:
    """A Function's hand-written gradients, and the tape's gradients of its plain forward run
    on Tensors (the recording namespace differentiates the same equations)."""
    ctx = function.context()
    function.forward(ctx, *arrays, **options)
    ctx.needs = tuple(needs) if needs is not None else tuple(True for _ in arrays)
    written = list(function.backward(ctx, dy))
    leaves = [xpnn.Tensor(a, requires_grad=wanted) for a, wanted in zip(arrays, ctx.needs, strict=True)]
    out = function.forward(function.context(), *leaves, **options)
    out.backward(dy)
    recorded = [leaf.grad if wanted else None for leaf, wanted in zip(leaves, ctx.needs, strict=True)]
    return written, recorded

"""The numba loops on several threads (:mod:`xpnn.kernels.threads`): the thread count follows
what the user set (BLAS's limit, numba's own, the cores allowed), and splitting a loop into
parts leaves every bit as the serial loop computes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.kernels import compile, threads

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off
numba = pytest.importorskip("numba", reason="numba is optional (the fast extra); its loops are not tested")
RNG = np.random.default_rng(5)


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``parts(n)``: every loop split into ``n`` parts from now on, whatever its size."""
    monkeypatch.setattr(compile, "enabled", True)

    def force(n: int) -> None:
        monkeypatch.setattr(threads, "parts_for", lambda elements: n)

    return force


def test_the_count_follows_blas_limits_and_numba_and_is_at_least_one() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert threads.count() == 1
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert threads.count() == 1
    finally:
        numba.set_num_threads(before)
    assert 1 <= threads.count() <= numba.get_num_threads()


def test_small_work_stays_on_one_thread() -> None:
    assert threads.parts_for(threads.MIN_ELEMENTS - 1) == 1


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")


def _run(model: xpnn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Forward and backward of each layer by hand: outputs, input gradients, parameter grads."""
    results, h = [], x
    for layer in model.layers:
        h = layer.forward(h)
        results.append(h)
    d = np.cos(h)
    for layer in reversed(model.layers):
        layer.input_grad = True
        d = layer.backward(d)
        results.append(d)
    results += [p.grad for p in model.parameters()]
    model.zero_grad()
    return results


@pytest.mark.parametrize("n", [2, 3, 7])
def test_convolution_and_pooling_give_the_serial_bits_on_any_number_of_parts(parts: Any, n: int) -> None:
    layers = [xpnn.Conv2D(3, 5, 3, padding=1), xpnn.MaxPool2D(2), xpnn.Conv2D(5, 4, 3, stride=2),
              xpnn.MaxPool2D(3, stride=1, padding=1)]  # fmt: skip
    model = xpnn.Sequential(layers, seed=0)
    x = RNG.standard_normal((6, 3, 13, 12)).astype(np.float32)
    parts(1)
    serial = _run(model, x)
    parts(n)
    for got, want in zip(_run(model, x), serial, strict=True):
        assert np.array_equal(_bits(got), _bits(want))

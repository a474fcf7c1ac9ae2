"""BatchNorm's fast path (:mod:`xpnn.kernels.batch_norm`) gives the plain equations' numbers bit
for bit: output, running statistics and every gradient, float32 and float64, for a C-contiguous
input and for a channel-major one (what the fused convolution returns), on any thread count;
and it is the path taken where it applies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import functional as F
from xpnn.kernels import batch_norm, compile, threads

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off
pytest.importorskip("numba", reason="numba is optional (the fast extra); its loops are not tested")
SHAPES = [(16, 8, 14, 14), (7, 3, 5, 5), (2, 3, 17, 13), (5, 1, 4, 4), (1, 4, 3, 3), (9, 5, 1, 1)]


def _input(shape: tuple[int, ...], layout: str, dtype: Any, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    if layout == "c":
        return (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    return (rng.standard_normal((c, n, h, w)) * 3 + 1).astype(dtype).transpose(1, 0, 2, 3)


def _step(x: np.ndarray, g: np.ndarray) -> list[np.ndarray]:
    """One training-mode forward and backward of a BatchNorm layer (momentum 0.1) on ``x``."""
    layer = xpnn.BatchNorm(x.shape[1])
    layer.to("numpy")
    rng = np.random.default_rng(1)
    layer.weight.value = rng.standard_normal(x.shape[1]).astype(x.dtype)  # type: ignore[union-attr]
    layer.bias.value = rng.standard_normal(x.shape[1]).astype(x.dtype)  # type: ignore[union-attr]
    layer.running_mean = layer.running_mean.astype(x.dtype)
    layer.running_var = layer.running_var.astype(x.dtype)
    t = xpnn.Tensor(x, requires_grad=True)
    y = layer(t)
    y.backward(g)
    return [y.value, t.grad, layer.weight.grad, layer.bias.grad, layer.running_mean, layer.running_var]  # type: ignore[union-attr]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["c", "channel-major"])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_fast_path_gives_the_plain_bits(shape: tuple[int, ...], layout: str, dtype: Any) -> None:
    x, g = _input(shape, layout, dtype, 0), _input(shape, layout, dtype, 2)
    fast = _step(x, g)
    with xpnn.kernels.disabled():
        plain = _step(x, g)
    for a, b in zip(fast, plain, strict=True):
        assert a.dtype == dtype and a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_any_thread_count_gives_the_same_bits(parts: int, monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (16, 8, 14, 14)
    x, g = _input(shape, "channel-major", np.float32, 3), _input(shape, "channel-major", np.float32, 4)
    serial = _step(x, g)
    monkeypatch.setattr(threads, "parts_for", lambda elements: parts)
    for a, b in zip(_step(x, g), serial, strict=True):
        assert np.array_equal(a, b)


def test_the_fast_path_runs_where_it_applies_and_not_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"forward": 0, "backward": 0}
    for name in calls:
        real = getattr(batch_norm, name)

        def count(*args: Any, _name: str = name, _real: Any = real) -> Any:
            result = _real(*args)
            calls[_name] += result is not None
            return result

        monkeypatch.setattr(batch_norm, name, count)
    x = _input((4, 3, 5, 5), "c", np.float32, 5)
    _step(x, np.ones_like(x))
    assert calls == {"forward": 1, "backward": 1}
    _step(x, np.ones((4, 5, 5, 3), np.float32).transpose(0, 3, 1, 2))  # g in another layout: plain backward
    assert calls == {"forward": 2, "backward": 1}
    # a strided input: the plain forward, whose xhat is C-contiguous, as g: the fast backward
    _step(x[:, :, ::2], np.ones((4, 3, 3, 5), np.float32))
    assert calls == {"forward": 2, "backward": 2}
    monkeypatch.setattr(compile, "enabled", False)  # numba off: the plain equations
    _step(x, np.ones_like(x))
    assert calls == {"forward": 2, "backward": 2}


def test_without_weights_the_plain_forward_and_the_fast_backward_give_the_plain_bits() -> None:
    x, g = _input((4, 3, 5, 5), "c", np.float64, 6), _input((4, 3, 5, 5), "c", np.float64, 7)

    def run() -> list[np.ndarray]:
        t = xpnn.Tensor(x, requires_grad=True)
        y = F.batch_norm(t, None, None, training=True)
        y.backward(g)
        return [y.value, t.grad]

    fast = run()
    with xpnn.kernels.disabled():
        plain = run()
    for a, b in zip(fast, plain, strict=True):
        assert np.array_equal(a, b)

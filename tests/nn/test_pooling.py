"""Pooling: finite-difference gradients, torch.nn.functional equality (padding, strides,
ceil_mode, ties), fast path = plain path, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.errors import ShapeError
from xpnn.kernels import compile
from xpnn.testing import assert_close, check_gradients

RNG = np.random.default_rng(11)

# (kernel, options): odd sizes, rectangular kernels and strides, padding, ceil_mode
CASES = [
    (2, {}),
    (3, {"stride": 2, "padding": 1}),
    ((3, 2), {"stride": (2, 1)}),
    (3, {"stride": 2, "ceil_mode": True}),
    (2, {"stride": 1, "padding": 1, "ceil_mode": True}),
    (3, {"stride": (2, 3), "padding": (1, 0), "ceil_mode": True}),
]
POOLS = {"max": (xpnn.MaxPool2D, "max_pool2d"), "avg": (xpnn.AvgPool2D, "avg_pool2d")}  # torch's F.*


def _distinct(shape: tuple[int, ...]) -> np.ndarray:
    """Values with no ties (a max pool's finite differences need a unique maximum)."""
    return RNG.permutation(np.prod(shape)).reshape(shape) * 0.1 + 0.01 * RNG.standard_normal(shape)


@pytest.mark.parametrize("kind", sorted(POOLS))
@pytest.mark.parametrize("case", range(len(CASES)))
def test_pooling_gradients_match_finite_differences(kind, case, bk, to_bk):
    kernel, options = CASES[case]
    errors = check_gradients(POOLS[kind][0](kernel, **options), to_bk(_distinct((2, 2, 7, 6)), "float64"))
    assert set(errors) == {"input"}


def test_global_avg_pool_gradients_match_finite_differences(bk, to_bk):
    check_gradients(xpnn.GlobalAvgPool2D(), to_bk(RNG.standard_normal((2, 3, 4, 5)), "float64"))


def _compare(
    layer: Any, function: Any, x: np.ndarray, bk: backend.Backend, to_bk: Any, **options: Any
) -> None:
    torch = require_torch()
    y = layer.forward(to_bk(x))
    dy = RNG.standard_normal(tuple(y.shape)).astype(np.float32)
    dx = layer.backward(to_bk(dy))
    xt = torch.tensor(x, requires_grad=True)
    yt = function(xt, **options)
    yt.backward(torch.tensor(dy))
    assert backend.dtype_name(y.dtype) == backend.dtype_name(dx.dtype) == "float32"
    assert_close(y, yt.detach().numpy(), rtol=1e-4, atol=1e-6, what="y")
    assert_close(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6, what="dx")


@pytest.mark.parametrize(("kind", "fused"), [("max", True), ("max", False), ("avg", False)])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_pooling_matches_torch_in_float32(kind, case, fused, bk, to_bk, monkeypatch):
    monkeypatch.setattr(xpnn.MaxPool2D, "fused", fused)
    kernel, options = CASES[case]
    cls, name = POOLS[kind]
    function = getattr(require_torch().nn.functional, name)
    x = RNG.standard_normal((2, 3, 9, 7)).astype(np.float32)
    _compare(cls(kernel, **options), function, x, bk, to_bk, kernel_size=kernel, **options)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_max_pool_sends_a_tied_gradient_to_the_first_maximum_as_torch(fused, bk, to_bk, monkeypatch):
    torch = require_torch()
    F = torch.nn.functional
    monkeypatch.setattr(xpnn.MaxPool2D, "fused", fused)
    x = np.maximum(RNG.standard_normal((2, 2, 6, 6)), 0.0).astype(np.float32)  # ReLU'd: many zero ties
    x[0, 0] = 1.0
    _compare(xpnn.MaxPool2D(3, stride=1), F.max_pool2d, x, bk, to_bk, kernel_size=3, stride=1)
    _compare(xpnn.MaxPool2D(2), F.max_pool2d, x, bk, to_bk, kernel_size=2)


def test_global_avg_pool_matches_torch(bk, to_bk):
    x = RNG.standard_normal((3, 4, 5, 7)).astype(np.float32)
    layer = xpnn.GlobalAvgPool2D()
    y = layer.forward(to_bk(x))
    assert tuple(y.shape) == (3, 4)
    dx = layer.backward(to_bk(np.ones((3, 4), np.float32)))
    assert_close(y, x.mean(axis=(2, 3)), rtol=1e-5, what="y")
    assert_close(dx, np.full(x.shape, 1 / 35, np.float32), rtol=1e-6, what="dx")


@pytest.mark.parametrize("use_numba", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("channel_major", [False, True], ids=["nchw", "channel-major"])
@pytest.mark.parametrize("kernel", [2, 3])
def test_max_pool_fast_path_equals_plain_path_through_the_fused_switch(
    kernel, channel_major, use_numba, monkeypatch
):
    if use_numba:
        pytest.importorskip("numba", reason="numba is optional (the fast extra)")
    monkeypatch.setattr(compile, "enabled", use_numba)  # the numba loop, or the NumPy passes
    layer = xpnn.MaxPool2D(kernel, stride=2, padding=1)
    x = np.maximum(RNG.standard_normal((3, 2, 9, 8)), 0).astype(np.float32)
    x = x.transpose(1, 0, 2, 3) if channel_major else np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    results = []
    for switch in (True, False):
        layer.fused = switch
        y = layer.forward(x)
        results.append((y, layer.backward(y + 1.0)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pooling_keeps_dtype(dtype, bk, to_bk):
    for layer in (xpnn.MaxPool2D(2), xpnn.AvgPool2D(2, ceil_mode=True), xpnn.GlobalAvgPool2D()):
        y = layer.forward(to_bk(RNG.standard_normal((1, 2, 5, 5)), dtype))
        assert backend.dtype_name(layer.backward(y).dtype) == backend.dtype_name(y.dtype) == dtype


def test_pooling_config_rebuilds_the_layer():
    layer = xpnn.AvgPool2D((3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True)
    assert xpnn.AvgPool2D(**layer.config()).config() == layer.config()


def test_pooling_rejects_a_non_4d_input():
    with pytest.raises(
        ShapeError, match=r"MaxPool2D\(kernel \(2, 2\).*\(batch, channels, height, width\), got \(3, 8\)"
    ):
        xpnn.MaxPool2D(2).forward(np.zeros((3, 8), np.float32))


def test_pooling_rejects_an_image_smaller_than_the_kernel():
    with pytest.raises(ShapeError, match=r"AvgPool2D.*at least 3x3.*got 2x5"):
        xpnn.AvgPool2D(3).forward(np.zeros((1, 1, 2, 5), np.float32))


def test_pooling_rejects_padding_above_half_the_kernel():
    with pytest.raises(
        ShapeError, match=r"MaxPool2D: padding must be at most half the kernel size \(2, 2\), got \(2, 2\)"
    ):
        xpnn.MaxPool2D(2, padding=2)


@pytest.mark.parametrize("numba", [True, False], ids=["numba", "no-numba"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (8, 3, 4, 4), (4, 3, 8, 8), (4, 3, 64, 64)])
@pytest.mark.parametrize("pool", [xpnn.MaxPool2D, xpnn.AvgPool2D])
def test_a_pool_refuses_a_gradient_of_another_shape_than_its_output(
    pool: Any, shape: tuple[int, ...], fused: bool, numba: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fused loops index without bounds checks: a wrong dout must be refused before them
    monkeypatch.setattr(compile, "enabled", numba)
    layer = pool(2)
    layer.fused = fused
    layer.forward(np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"backward: expected dout of shape \(4, 3, 4, 4\)"):
        layer.backward(np.ones(shape, dtype=np.float32))

"""Conv2D: finite-difference gradients, torch.nn.functional equality, fast path = plain path,
dtypes, chunked inference and errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.errors import ShapeError
from xpnn.functional import windows
from xpnn.kernels import compile
from xpnn.kernels import conv as conv_kernels
from xpnn.testing import check_gradients

RNG = np.random.default_rng(7)

# (C_in, C_out, kernel, options) -- small images keep the float64 checks fast
GRADIENT_CASES = {
    "3x3": (2, 3, 3, {}),
    "pad1_stride2": (2, 3, 3, {"padding": 1, "stride": 2}),
    "same_even_kernel": (2, 2, (2, 4), {"padding": "same"}),
    "dilation2": (2, 2, 2, {"dilation": 2, "padding": 1}),
    "groups2": (4, 2, 3, {"groups": 2}),
    "depthwise": (3, 3, 3, {"groups": 3, "padding": 1}),
    "no_bias_1x1": (3, 2, 1, {"bias": False}),
}


def _gradient_check(case: str, bk: backend.Backend, to_bk: Any) -> None:
    c_in, c_out, kernel, options = GRADIENT_CASES[case]
    layer = xpnn.Conv2D(c_in, c_out, kernel, seed=0, **options).to(bk, dtype="float64")
    errors = check_gradients(layer, to_bk(RNG.standard_normal((2, c_in, 5, 6)), "float64"))
    assert set(errors) == {"input"} | {p.name for p in layer.parameters()}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_conv2d_gradients_match_finite_differences(case, bk, to_bk):
    _gradient_check(case, bk, to_bk)  # on NumPy: the fast path (Conv2D.fused is on by default)


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_conv2d_plain_path_gradients_match_finite_differences_on_numpy(case, monkeypatch):
    monkeypatch.setattr(xpnn.Conv2D, "fused", False)
    _gradient_check(case, backend.resolve("numpy"), lambda a, dtype: np.asarray(a, dtype=dtype))


# (N, C_in, H, W, C_out, kernel, options)
TORCH_GRID = [
    (2, 3, 9, 7, 4, 3, {}),
    (1, 1, 8, 8, 2, 3, {"padding": 1}),
    (3, 3, 7, 10, 5, (3, 2), {"stride": (2, 1), "padding": (1, 0)}),
    (2, 3, 8, 9, 4, (2, 4), {"padding": "same"}),
    (2, 3, 11, 9, 2, 5, {"padding": 2, "stride": 2}),
    (2, 3, 9, 9, 4, 1, {"padding": "valid"}),
    (2, 4, 9, 8, 6, 3, {"dilation": (2, 1), "padding": "same"}),
    (2, 4, 8, 8, 6, 3, {"groups": 2, "stride": 2}),
    (2, 3, 7, 7, 6, 3, {"groups": 3, "padding": 1, "bias": False}),
]


def _torch_conv(layer: xpnn.Conv2D, x: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    torch = require_torch()
    F = torch.nn.functional
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(backend.to_host(layer.weight.value), requires_grad=True)
    bt = None if layer.bias is None else torch.tensor(backend.to_host(layer.bias.value), requires_grad=True)
    padding = (
        layer.padding if isinstance(layer.padding, str) else windows.pair(layer.padding, "", "", minimum=0)
    )
    y = F.conv2d(
        xt, wt, bt, stride=layer.stride, padding=padding, dilation=layer.dilation, groups=layer.groups
    )
    y.backward(torch.tensor(dy))
    out = {"y": y.detach().numpy(), "dx": xt.grad.numpy(), "dW": wt.grad.numpy()}
    if bt is not None:
        out["db"] = bt.grad.numpy()
    return out


@pytest.mark.parametrize("case", range(len(TORCH_GRID)))
def test_conv2d_matches_torch_forward_and_backward_in_float32(case, bk, to_bk):
    _compare_with_torch(case, bk, to_bk)  # on NumPy: the fast path


@pytest.mark.parametrize("case", range(len(TORCH_GRID)))
def test_conv2d_plain_path_matches_torch_on_numpy(case, monkeypatch):
    monkeypatch.setattr(xpnn.Conv2D, "fused", False)
    _compare_with_torch(case, backend.resolve("numpy"), lambda a, dtype=None: np.array(a, dtype=dtype))


def _compare_with_torch(case: int, bk: backend.Backend, to_bk: Any) -> None:
    n, c_in, h, w, c_out, kernel, options = TORCH_GRID[case]
    layer = xpnn.Conv2D(c_in, c_out, kernel, seed=case, **options).to(bk)
    layer.bias is None or setattr(layer.bias, "value", to_bk(RNG.standard_normal(c_out).astype(np.float32)))
    x = RNG.standard_normal((n, c_in, h, w)).astype(np.float32)
    y = layer.forward(to_bk(x))
    dy = RNG.standard_normal(tuple(y.shape)).astype(np.float32)
    dx = layer.backward(to_bk(dy))
    expected = _torch_conv(layer, x, dy)
    got = {"y": y, "dx": dx, "dW": layer.weight.grad}
    if layer.bias is not None:
        got["db"] = layer.bias.grad
    for name, value in got.items():
        assert backend.dtype_name(value.dtype) == "float32", name
        xpnn.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-5, what=name)


@pytest.mark.parametrize("keep_bytes", [1 << 25, 0], ids=["kept", "recomputed"])  # the columns
@pytest.mark.parametrize("use_numba", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("stride", [(1, 2), 1])  # stride 1 "same": numba's flat-plane loops
def test_conv2d_fast_path_equals_plain_path_through_the_switch(stride, use_numba, keep_bytes, monkeypatch):
    if use_numba:
        pytest.importorskip("numba", reason="numba is optional (the fast extra)")
    monkeypatch.setattr(compile, "enabled", use_numba)  # im2col/col2im: numba loops or NumPy passes
    monkeypatch.setattr(conv_kernels, "KEEP_BYTES", keep_bytes)
    layer = xpnn.Conv2D(3, 4, 3, padding=1, stride=stride, seed=0)
    x = RNG.standard_normal((3, 3, 8, 9)).astype(np.float32)
    results = []
    for switch in (True, False):
        layer.fused = switch
        layer.weight.grad = layer.bias.grad = None
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y) * 0.5 + y)
        results.append([np.asarray(y), dx, layer.weight.grad, layer.bias.grad])
    for fast, plain in zip(*results, strict=True):  # one GEMM vs per-sample sums: float32 rounding
        scale = max(1.0, float(np.abs(plain).max()))  # of dW entries ~100 where one cancels to ~0.06
        np.testing.assert_allclose(fast, plain, rtol=2e-5, atol=2e-7 * scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_keeps_dtype_and_reset_parameters_keeps_backend_and_dtype(dtype, bk, to_bk):
    layer = xpnn.Conv2D(2, 3, 3, seed=0).to(bk, dtype=dtype)
    y = layer.forward(to_bk(RNG.standard_normal((2, 2, 5, 5)), dtype))
    dx = layer.backward(y)
    assert {backend.dtype_name(a.dtype) for a in (y, dx, layer.weight.grad, layer.bias.grad)} == {dtype}
    layer.reset_parameters(backend.host_rng(1))
    assert backend.backend_name(layer.weight.value) == bk.name
    assert backend.dtype_name(layer.weight.value.dtype) == dtype
    assert tuple(layer.weight.value.shape) == (3, 2, 3, 3)


def test_conv2d_as_first_layer_computes_no_input_gradient():
    model = xpnn.Sequential([xpnn.Conv2D(1, 2, 3), xpnn.Flatten(), xpnn.Dense(2 * 3 * 3, 2)], seed=0)
    y = model.forward(RNG.standard_normal((2, 1, 5, 5)).astype(np.float32))
    assert model.backward(np.ones_like(y)) is None
    assert model[0].weight.grad is not None


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_conv2d_inference_in_batch_chunks_equals_one_batch(fused, monkeypatch):
    layer = xpnn.Conv2D(2, 3, 3, padding=1, seed=0)
    layer.fused = fused
    x = RNG.standard_normal((5, 2, 6, 6)).astype(np.float32)
    whole = layer.eval().forward(x)
    monkeypatch.setattr(windows, "chunks", lambda n, per_sample: [slice(0, 2), slice(2, 4), slice(4, 5)])
    np.testing.assert_array_equal(layer.forward(x), whole)


def test_batch_chunks_bound_the_im2col_elements():
    assert windows.chunks(10, 300, budget=1000) == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
    assert windows.chunks(4, 300, budget=10**6) == [slice(0, 4)]


def test_conv2d_config_rebuilds_the_layer():
    layer = xpnn.Conv2D(4, 6, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), groups=2, bias=False)
    again = xpnn.Conv2D(**layer.config())
    assert again.config() == layer.config() and again.pads == layer.pads


def test_conv2d_rejects_a_wrong_channel_count_naming_layer_expected_and_actual():
    with pytest.raises(
        ShapeError, match=r"Conv2D\(3 -> 4.*expected input of shape \(batch, 3, .*got \(2, 2, 8, 8\)"
    ):
        xpnn.Conv2D(3, 4, 3).forward(np.zeros((2, 2, 8, 8), np.float32))


def test_conv2d_rejects_an_image_smaller_than_the_kernel():
    with pytest.raises(ShapeError, match=r"Conv2D\(1 -> 2.*at least 5x5.*got 4x6"):
        xpnn.Conv2D(1, 2, 5).forward(np.zeros((1, 1, 4, 6), np.float32))


def test_conv2d_rejects_a_non_4d_input():
    with pytest.raises(ShapeError, match=r"Conv2D\(1 -> 2.*\(batch, 1, height, width\), got \(1, 8, 8\)"):
        xpnn.Conv2D(1, 2, 3).forward(np.zeros((1, 8, 8), np.float32))


def test_conv2d_rejects_same_padding_with_stride_above_one():
    with pytest.raises(
        ValueError, match=r"Conv2D\(1 -> 2\): padding='same' needs stride 1, got stride \(2, 2\)"
    ):
        xpnn.Conv2D(1, 2, 3, padding="same", stride=2)


def test_conv2d_rejects_channels_not_divisible_by_groups():
    with pytest.raises(ShapeError, match=r"Conv2D\(4 -> 6\).*in_channels \(4\).*divisible by groups \(3\)"):
        xpnn.Conv2D(4, 6, 3, groups=3)

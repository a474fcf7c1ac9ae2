"""The optional numba loops of MaxPool2D and Conv2D (:mod:`xpnn.kernels.conv_numba`): bit for
bit the NumPy fast path of :mod:`xpnn.backend.numpy_conv` (numba switched off) and, for max
pooling's gradient, the plain equations; odd sizes, padding, ceil_mode, overlapping windows,
ties, NaN and -inf, float32 and float64, batch 1, contiguous NCHW and channel-major inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.kernels import compile, conv_numba
from xpnn.kernels import conv as conv_kernels

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

RNG = np.random.default_rng(23)

# (kernel, options, image (H, W)): the specialised sizes (2x2/2, 3x3/2, 3x3/1) and the general loop
POOL_CASES = [
    (2, {}, (28, 28)),
    (2, {}, (7, 9)),  # odd: the last row and column belong to no window
    (2, {"ceil_mode": True}, (7, 9)),
    (3, {"stride": 2, "padding": 1}, (9, 8)),
    (3, {"stride": 1, "padding": 1}, (6, 7)),  # overlapping windows: up to 9 share a cell
    (3, {"stride": 2, "ceil_mode": True}, (8, 7)),
    ((3, 2), {"stride": (2, 1)}, (7, 6)),
    (2, {"stride": 1, "padding": 1, "ceil_mode": True}, (5, 5)),
    (3, {"stride": (2, 3), "padding": (1, 0), "ceil_mode": True}, (9, 7)),
    (4, {"stride": 3, "padding": 2, "ceil_mode": True}, (10, 11)),
    (5, {"stride": 1}, (5, 5)),  # one window over the whole image
]


@pytest.fixture
def numba_on(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba", reason="numba is optional (the fast extra); its loops are not tested")
    monkeypatch.setattr(compile, "enabled", True)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")  # signed zeros and NaNs compared too


def _assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(_bits(got), _bits(want))


def _image(n: int, c: int, hw: tuple[int, int], dtype: str, order: str, special: bool = False) -> np.ndarray:
    """ReLU'd values (many tied zeros), in NCHW or channel-major (a (C, N, H, W) array's
    transposed view, as a fused convolution returns); ``special``: some NaN, -inf and -0.0."""
    x = np.maximum(RNG.standard_normal((c, n, *hw)), 0.0).astype(dtype)
    x[0, 0, 0, :2] = 2.0  # a tie of two maxima in the first window
    if special:
        x[-1, -1, 0, 0] = np.nan
        x[0, -1, :, :3] = -np.inf  # whole windows of -inf (next to the padding, if any)
        x[-1, 0, 1, 1] = -0.0
    x = x.transpose(1, 0, 2, 3)
    return x if order == "channel-major" else np.ascontiguousarray(x)


def _pool_saved(layer: Any) -> Any:
    """What the last plain-array forward of a max-pooling layer kept for its backward."""
    return layer._call.ctx.saved[1]


def _pool(x: np.ndarray, kernel: Any, options: dict[str, Any], dout: np.ndarray | None, *, numba: bool,
          monkeypatch: pytest.MonkeyPatch, fused: bool = True) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    monkeypatch.setattr(compile, "enabled", numba)
    layer = xpnn.MaxPool2D(kernel, **options)
    layer.fused = fused
    y = layer.forward(x)
    if fused:
        assert (len(_pool_saved(layer)) == 2) == numba  # numba's (x, index), or the NumPy passes' slices
    return y, layer.backward(np.ones_like(y) if dout is None else dout)


@pytest.mark.parametrize("dout_order", ["contiguous", "channel-major"])
@pytest.mark.parametrize("order", ["contiguous", "channel-major"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_max_pool_loops_equal_the_numpy_fast_path_and_the_plain_path(
    case: int, dtype: str, order: str, dout_order: str, numba_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, options, hw = POOL_CASES[case]
    x = _image(1 if case % 3 == 0 else 3, 2, hw, dtype, order)
    n, c, ho, wo = xpnn.MaxPool2D(kernel, **options).forward(x).shape
    dout = RNG.standard_normal((c, n, ho, wo)).astype(dtype).transpose(1, 0, 2, 3)  # channel-major
    dout = np.ascontiguousarray(dout) if dout_order == "contiguous" else dout
    y, dx = _pool(x, kernel, options, dout, numba=True, monkeypatch=monkeypatch)
    y_np, dx_np = _pool(x, kernel, options, dout, numba=False, monkeypatch=monkeypatch)
    y_plain, dx_plain = _pool(x, kernel, options, dout, numba=True, fused=False, monkeypatch=monkeypatch)
    _assert_bits(y, y_np)
    np.testing.assert_array_equal(y, y_plain)
    _assert_bits(dx, dx_plain)  # 0.0 plus each window's gradient in the plain path's order
    np.testing.assert_array_equal(dx, dx_np)  # (its disjoint assignment writes dout * 0: maybe -0.0)
    for got in (y, dx):  # the input's memory order kept, compact
        assert (got.transpose(1, 0, 2, 3) if order == "channel-major" else got).flags.c_contiguous


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [0, 3, 4, 9])
def test_max_pool_loops_route_nan_and_minus_inf_as_the_numpy_fast_path(
    case: int, dtype: str, numba_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, options, hw = POOL_CASES[case]
    x = _image(2, 2, hw, dtype, "channel-major", special=True)
    results = [_pool(x, kernel, options, None, numba=use, monkeypatch=monkeypatch) for use in (True, False)]
    (y, dx), (y_np, dx_np) = results
    assert np.isnan(y).any() and np.isneginf(y).any()
    _assert_bits(y, y_np)  # NaN wins its windows, a tie keeps the first zero (torch's rule)
    np.testing.assert_array_equal(dx, dx_np)  # a NaN window routes to its last NaN; -inf: the first real cell


def test_max_pool_index_is_int16_and_numba_declines_what_it_does_not_cover(numba_on: None) -> None:
    layer = xpnn.MaxPool2D(2)
    layer.forward(_image(2, 3, (6, 6), "float32", "contiguous"))
    assert _pool_saved(layer)[1].dtype == np.int16 and _pool_saved(layer)[1].shape == (2, 3, 3, 3)
    geo = layer._call.ctx.saved[2]
    assert conv_numba.max_pool(np.ones((1, 1, 6, 6), np.float16), geo) is None
    assert conv_numba.max_pool(np.ones((2, 3, 6, 6), np.float32)[:, :, ::-1], geo) is None  # strided
    # a dout of another dtype (the layer refuses one; the kernel itself falls back): the NumPy passes
    dx = conv_kernels.max_pool_backward(np.ones((2, 3, 3, 3), np.float64), layer._call.ctx.saved[1], geo)
    assert dx.dtype == np.float64 and dx.sum() == 2 * 3 * 3 * 3  # one 1.0 per window


def test_max_pool_without_numba_takes_the_numpy_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile, "_installed", False)  # as where numba is not installed
    layer = xpnn.MaxPool2D(3, stride=2, padding=1)
    x = _image(2, 3, (7, 8), "float32", "channel-major")
    y = layer.forward(x)
    assert len(_pool_saved(layer)) > 2 and conv_numba.max_pool(x, layer._call.ctx.saved[2]) is None
    dx = layer.backward(np.ones_like(y))
    layer.fused = False
    np.testing.assert_array_equal(layer.forward(x), y)
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), dx)


# (C_in, C_out, kernel, options, image): "same" stride 1 takes the flat-plane loops, the rest the rows
CONV_CASES = [
    (3, 4, 3, {"padding": 1}, (8, 9)),
    (1, 3, 3, {"padding": 1}, (28, 28)),
    (2, 3, (2, 4), {"padding": "same"}, (5, 7)),  # even kernel: one more pad at the bottom and right
    (2, 2, 3, {"padding": "same", "dilation": 2}, (7, 6)),
    (3, 2, 1, {}, (4, 5)),
    (2, 3, 3, {}, (6, 7)),  # valid: no padding
    (2, 3, 3, {"padding": 1, "stride": 2}, (9, 8)),
    (2, 2, (3, 2), {"padding": (2, 1), "stride": (1, 2), "dilation": (2, 1)}, (7, 9)),
]


def _conv(x: np.ndarray, case: int, dout: np.ndarray | None, *, numba: bool,
          monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:  # fmt: skip
    monkeypatch.setattr(compile, "enabled", numba)
    c_in, c_out, kernel, options, _ = CONV_CASES[case]
    layer = xpnn.Conv2D(c_in, c_out, kernel, seed=0, **options).to("numpy", dtype=str(x.dtype))
    layer.input_grad = True
    y = layer.forward(x)
    dx = layer.backward(np.ones_like(y) if dout is None else dout)
    return [y, dx, layer.weight.grad, layer.bias.grad]


# columns kept from the forward; recomputed in the backward, the whole batch in one chunk, or
# one sample each
@pytest.mark.parametrize("keep_bytes,chunk_bytes", [(1 << 25, 1 << 21), (0, 1 << 21), (0, 1)])
@pytest.mark.parametrize("order", ["contiguous", "channel-major", "strided"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_im2col_and_col2im_loops_equal_the_numpy_fast_path(
    case: int, dtype: str, order: str, keep_bytes: int, chunk_bytes: int, numba_on: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(conv_kernels, "KEEP_BYTES", keep_bytes)
    c_in, _, _, _, (h, w) = CONV_CASES[case]
    x = RNG.standard_normal((c_in, 1 if case % 3 == 0 else 3, h, 2 * w)).astype(dtype).transpose(1, 0, 2, 3)
    x = {"contiguous": np.ascontiguousarray(x[..., :w]), "channel-major": np.array(x[..., :w], order="K"),
         "strided": x[..., ::2]}[order]  # fmt: skip
    probe = _conv(x, case, None, numba=False, monkeypatch=monkeypatch)[0]
    dout = RNG.standard_normal(probe.shape).astype(dtype)
    want = _conv(x, case, dout, numba=False, monkeypatch=monkeypatch)
    got = _conv(x, case, dout, numba=True, monkeypatch=monkeypatch)
    geo = (
        xpnn.Conv2D(*CONV_CASES[case][:3], **CONV_CASES[case][3])
        .to("numpy", dtype=dtype)
        .options(x)["geometry"]
    )
    cols = np.empty((c_in, len(geo.offsets), x.shape[0], *geo.out), dtype=dtype)
    assert conv_numba.im2col(x.transpose(1, 0, 2, 3), geo, 0, cols)  # the loops ran
    for a, b in zip(got, want, strict=True):
        _assert_bits(a, b)
    assert got[1].transpose(1, 0, 2, 3).flags.c_contiguous  # dx: compact channel-major memory


def test_col2im_adds_nothing_from_padding_and_keeps_non_finite_pieces_out(numba_on: None) -> None:
    layer = xpnn.Conv2D(1, 1, 3, padding=1, seed=0)
    geo = layer.options(np.zeros((1, 1, 4, 5), np.float32))["geometry"]
    dcols = np.full((1, 9, 1, 4, 5), 1.0, np.float32)
    dcols[:, :, :, 0, 0] = np.inf  # output (0, 0): its offsets (0, *) and (*, 0) read padding
    dx = np.empty((1, 1, 4, 5), np.float32)
    assert conv_numba.col2im(dcols, geo, 0, dx)
    cover = np.zeros((6, 7), np.float32)
    for i in range(3):
        for j in range(3):
            cover[i : i + 4, j : j + 5] += 1.0
    expected = cover[1:5, 1:6].copy()
    expected[:2, :2] = np.inf  # the real cells under output (0, 0)'s window
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_an_empty_batch_passes_through_the_loops(numba_on: None) -> None:
    model = xpnn.Sequential([xpnn.Conv2D(2, 3, 3, padding=1), xpnn.ReLU(), xpnn.MaxPool2D(2),
                             xpnn.Conv2D(3, 4, 3, padding=1)], seed=0)  # fmt: skip
    y = np.zeros((0, 2, 6, 6), np.float32)
    for layer in model.layers:  # each layer's own plain-array forward and backward
        y = layer.forward(y)
    assert y.shape == (0, 4, 3, 3) and len(model[2]._call.ctx.saved[1]) == 2  # numba's max pooling ran
    d = np.ones_like(y)
    for layer in reversed(model.layers):
        layer.input_grad = True
        d = layer.backward(d)
    assert d.shape == (0, 2, 6, 6) and model[0].weight.grad.shape == (3, 2, 3, 3)

"""Issue 24 item 5: MaxPool2D's plain path (the only one on torch, JAX and array-api-strict)
propagates NaN as the fused path and torch do, and sends the gradient where torch's goes:
the first maximum, the LAST NaN of a window, a window of -inf to its first real cell."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend

NAN, INF = np.nan, np.inf
WINDOWS = [  # one 2x2 window each: (values, the cell torch's gradient goes to)
    ([1.0, NAN, 3.0, 2.0], 1),
    ([NAN, 5.0, NAN, 2.0], 2),  # the last NaN
    ([NAN, NAN, NAN, NAN], 3),
    ([5.0, 5.0, 1.0, NAN], 3),
    ([2.0, 5.0, 5.0, 1.0], 1),  # a tie: the first maximum
    ([-INF, -INF, -INF, -INF], 0),
    ([INF, NAN, INF, 1.0], 1),
]


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
@pytest.mark.parametrize(("values", "cell"), WINDOWS, ids=[str(w[0]) for w in WINDOWS])
def test_a_window_with_nan_pools_to_nan_and_routes_its_gradient_as_torch(
    bk: backend.Backend, to_bk: Any, values: list[float], cell: int, fused: bool
) -> None:
    layer = xpnn.MaxPool2D(2)
    layer.fused = fused
    y = backend.to_host(layer.forward(to_bk(np.array(values, np.float32).reshape(1, 1, 2, 2))))
    expected = NAN if np.isnan(values).any() else max(values)
    np.testing.assert_array_equal(y.reshape(-1), [expected])
    dx = backend.to_host(layer.backward(to_bk(np.full((1, 1, 1, 1), 3.0, np.float32))))
    np.testing.assert_array_equal(dx.reshape(-1), np.eye(4, dtype=np.float32)[cell] * 3.0)


def _image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    specials = np.array([NAN, -INF, INF, -0.0, 0.0, 1.0, 2.0, -1.0], np.float32)
    return rng.choice(specials, size=shape)


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
@pytest.mark.parametrize(
    ("kernel", "options"),
    [
        (2, {}),
        (3, {"stride": 1, "padding": 1}),
        ((3, 2), {"stride": 2, "padding": (1, 0), "ceil_mode": True}),
    ],
)
def test_max_pool_of_nan_inf_and_signed_zeros_equals_torchs_bits_and_gradient(
    bk: backend.Backend, to_bk: Any, kernel: Any, options: dict[str, Any], fused: bool
) -> None:
    torch = require_torch()
    rng = np.random.default_rng(5)
    x = _image(rng, (2, 3, 6, 5))
    layer = xpnn.MaxPool2D(kernel, **options)
    layer.fused = fused
    y = backend.to_host(layer.forward(to_bk(x)))
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dx = backend.to_host(layer.backward(to_bk(dout)))
    tx = torch.tensor(x, requires_grad=True)
    stride = options.get("stride", kernel)
    ty = torch.nn.functional.max_pool2d(
        tx, kernel, stride, options.get("padding", 0), ceil_mode=options.get("ceil_mode", False)
    )
    ty.backward(torch.tensor(dout))
    expected = ty.detach().numpy()
    np.testing.assert_array_equal(y, expected)  # NaN where torch has NaN
    np.testing.assert_array_equal(np.signbit(y), np.signbit(expected))  # a tie of 0.0 and -0.0 too
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6 * np.abs(dout).sum())


def test_a_nan_image_through_a_cnn_on_the_plain_path_stops_fit_with_non_finite_loss_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 4, 4)).astype(np.float32)
    x[3, 0, 1, 2] = NAN
    model = xpnn.Sequential([xpnn.Conv2D(1, 2, 3, padding=1, seed=0), xpnn.MaxPool2D(2), xpnn.Flatten(),
                             xpnn.Dense(8, 2, seed=0)], seed=0)  # fmt: skip
    with xpnn.kernels.disabled(), pytest.raises(xpnn.NonFiniteLossError, match=r"epoch 1 is nan"):
        model.fit(x, np.arange(8) % 2, loss=xpnn.SoftmaxCrossEntropy(),
                  optimizer=xpnn.SGD(model.parameters(), lr=0.1), batch_size=4, verbose=0)  # fmt: skip


def test_the_plain_path_indexes_more_than_32768_window_offsets() -> None:
    n = 2**15 + 3
    x = np.zeros((1, 1, 1, n), np.float32)
    x[0, 0, 0, -2] = 1.0  # the maximum past int16's range of offsets
    layer = xpnn.MaxPool2D((1, n))
    layer.fused = False
    assert float(layer.forward(x)[0, 0, 0, 0]) == 1.0
    dx = layer.backward(np.ones((1, 1, 1, 1), np.float32))
    assert int(np.argmax(dx)) == n - 2 and float(dx.sum()) == 1.0

"""Issue 24 item 6: every layer's ``backward`` checks ``dout`` (shape, namespace, device, dtype)
against its last output before anything changes, and before any forward names the layer; a
forward refused with a named error leaves what the last forward saved."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend

# each layer with an input (of shape (2, 3, 6, 4) unless said) whose output is not square,
# so that a transposed dout of the right size exists
LAYERS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "Conv2D": (lambda: xpnn.Conv2D(3, 2, 3, padding=1), (2, 3, 6, 4)),
    "MaxPool2D": (lambda: xpnn.MaxPool2D(2), (2, 3, 6, 4)),
    "AvgPool2D": (lambda: xpnn.AvgPool2D(2), (2, 3, 6, 4)),
    "GlobalAvgPool2D": (xpnn.GlobalAvgPool2D, (2, 3, 6, 4)),
    "BatchNorm 4-D": (lambda: xpnn.BatchNorm(3), (2, 3, 6, 4)),
    "BatchNorm 2-D": (lambda: xpnn.BatchNorm(3), (4, 3)),
    "Dense": (lambda: xpnn.Dense(3, 5), (4, 3)),
    "ReLU": (xpnn.ReLU, (4, 3)),
    "LeakyReLU": (xpnn.LeakyReLU, (4, 3)),
    "Sigmoid": (xpnn.Sigmoid, (4, 3)),
    "Tanh": (xpnn.Tanh, (4, 3)),
    "Softmax": (xpnn.Softmax, (4, 3)),
    "GELU": (xpnn.GELU, (4, 3)),
    "LayerNorm": (lambda: xpnn.LayerNorm(3), (4, 3)),
    "Dropout": (lambda: xpnn.Dropout(0.5, seed=0), (4, 3)),
    "Dropout eval": (lambda: xpnn.Dropout(0.5, seed=0).eval(), (4, 3)),
    "Flatten": (xpnn.Flatten, (2, 3, 6, 4)),
    "MultiHeadAttention": (lambda: xpnn.MultiHeadAttention(4, 2), (2, 3, 4)),
    "Sequential": (lambda: xpnn.Sequential([xpnn.Dense(3, 5), xpnn.ReLU()], seed=0), (4, 3)),
}


def _forward(name: str) -> tuple[Any, np.ndarray, np.ndarray]:
    build, shape = LAYERS[name]
    layer = build()
    layer.reset_parameters(np.random.default_rng(0))  # the same weights in every build
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return layer, x, layer.forward(x)


def _grads(layer: Any) -> list[Any]:
    return [p.grad for p in layer.parameters()]


def _wrong_douts(y: np.ndarray) -> dict[str, tuple[np.ndarray, type, str]]:
    ones = np.ones(y.shape, np.float32)
    douts = {
        "float64": (ones.astype(np.float64), xpnn.DTypeError, r"expected dout of dtype float32"),
        "int64": (ones.astype(np.int64), xpnn.DTypeError, r"expected dout of dtype float32"),
        "broadcast (1, ...)": (ones[:1], xpnn.ShapeError, r"expected dout of shape"),
        "flat": (ones.reshape(-1), xpnn.ShapeError, r"expected dout of shape"),
    }
    if y.ndim >= 2 and y.shape[-1] != y.shape[-2]:
        transposed = np.ascontiguousarray(np.swapaxes(ones, -1, -2))
        douts["transposed"] = (transposed, xpnn.ShapeError, r"expected dout of shape")
    return douts


@pytest.mark.parametrize("name", LAYERS)
def test_backward_refuses_a_dout_of_another_shape_or_dtype_and_changes_no_gradient(name: str) -> None:
    layer, _, y = _forward(name)
    for what, (dout, error, match) in _wrong_douts(y).items():
        with pytest.raises(error, match=match):
            layer.backward(dout)
        assert all(g is None for g in _grads(layer)), what


@pytest.mark.parametrize("name", LAYERS)
def test_backward_refuses_a_dout_of_another_backend(name: str) -> None:
    torch = pytest.importorskip("torch")
    layer, _, y = _forward(name)
    with pytest.raises(
        xpnn.BackendMismatchError, match=r"expected dout of the last output's type numpy\.ndarray"
    ):
        layer.backward(torch.ones(tuple(y.shape)))
    assert all(g is None for g in _grads(layer))


@pytest.mark.parametrize("name", LAYERS)
def test_backward_before_any_forward_is_a_forward_first_error(name: str) -> None:
    layer = LAYERS[name][0]()
    with pytest.raises(xpnn.ForwardFirstError, match=r"backward: called before forward"):
        layer.backward(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("name", LAYERS)
def test_a_right_dout_after_refused_ones_gives_the_gradient_of_a_fresh_layer(name: str) -> None:
    layer, _, y = _forward(name)
    for dout, error, _ in _wrong_douts(y).values():
        with pytest.raises(error):
            layer.backward(dout)
    dout = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    fresh, _, _ = _forward(name)
    dx, expected = layer.backward(dout), fresh.backward(dout)
    assert (dx is None) == (expected is None)  # a Sequential returns no input gradient
    if dx is not None:
        np.testing.assert_array_equal(backend.to_host(dx), backend.to_host(expected))
    for a, b in zip(_grads(layer), _grads(fresh), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("Conv2D", (2, 4, 6, 4)),  # another channel count
        ("MaxPool2D", (2, 3, 1, 1)),
        ("AvgPool2D", (2, 3, 1, 5)),
        ("GlobalAvgPool2D", (2, 3, 0, 0)),
        ("BatchNorm 4-D", (2, 4, 6, 4)),
        ("Dense", (4, 2)),
        ("LayerNorm", (4, 2)),
        ("Flatten", ()),
        ("MultiHeadAttention", (2, 3, 5)),
    ],
)
def test_a_refused_forward_keeps_what_the_last_forward_saved(name: str, bad: tuple[int, ...]) -> None:
    layer, _, y = _forward(name)
    with pytest.raises(xpnn.ShapeError):
        layer.forward(np.ones(bad, np.float32))
    dout = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    fresh, _, _ = _forward(name)
    np.testing.assert_array_equal(layer.backward(dout), fresh.backward(dout))

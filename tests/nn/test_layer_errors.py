"""Bad input to layers and models gets a specific error naming the layer, expected and actual."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import backend


def test_dense_rejects_the_wrong_input_width(bk, to_bk):
    layer = xpnn.Dense(784, 128).to(bk)
    with pytest.raises(
        xpnn.ShapeError, match=r"Dense\(784 -> 128\): expected input of shape \(batch, 784\), got \(32, 785\)"
    ):
        layer.forward(to_bk(np.zeros((32, 785)), "float32"))


def test_dense_rejects_a_0d_input_and_takes_leading_axes_as_torch_linear(bk, to_bk):
    with pytest.raises(
        xpnn.ShapeError, match=r"Dense\(4 -> 2\): expected input of shape \(batch, 4\), got \(\)"
    ):
        xpnn.Dense(4, 2).to(bk).forward(to_bk(np.zeros(()), "float32"))
    with pytest.raises(
        xpnn.ShapeError, match=r"Dense\(4 -> 2\): expected input of shape \(batch, 4\), got \(2, 2, 3\)"
    ):
        xpnn.Dense(4, 2).to(bk).forward(to_bk(np.zeros((2, 2, 3)), "float32"))
    assert tuple(xpnn.Dense(4, 2).to(bk).forward(to_bk(np.zeros((2, 5, 4)), "float32")).shape) == (2, 5, 2)


def test_dense_rejects_integer_input(bk, to_bk):
    with pytest.raises(
        xpnn.DTypeError, match=r"Dense\(4 -> 2\): expected a floating-point input, got dtype .*int64"
    ):
        xpnn.Dense(4, 2).to(bk).forward(to_bk(np.zeros((3, 4), dtype=np.int64), "int64"))


def test_dense_rejects_float64_input_to_a_float32_model_instead_of_upcasting(bk, to_bk):
    with pytest.raises(xpnn.DTypeError, match=r"expected input of dtype .*float32.*got .*float64"):
        xpnn.Dense(4, 2).to(bk).forward(to_bk(np.zeros((3, 4)), "float64"))


def test_dense_rejects_an_array_of_another_backend(bk, to_bk):
    model = xpnn.Sequential([xpnn.Dense(4, 2)], seed=0).to(bk.name)
    other = "torch" if bk.name != "torch" else "numpy"
    try:
        x = backend.from_host(np.zeros((3, 4), dtype=np.float32), backend.resolve(other))
    except xpnn.BackendUnavailableError:
        pytest.skip(f"needs {other} installed")
    with pytest.raises(
        xpnn.BackendMismatchError,
        match=rf"expected input on backend '{bk.name}', got an array of backend '{other}'",
    ):
        model.forward(x)


def test_layers_reject_non_arrays(bk):
    with pytest.raises(xpnn.BackendMismatchError, match=r"Dense.*got list"):
        xpnn.Dense(2, 2).to(bk).forward([[1.0, 2.0]])
    with pytest.raises(xpnn.BackendMismatchError, match=r"ReLU.*got list"):
        xpnn.ReLU().forward([[1.0, 2.0]])


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="item 1 is a function"):
        xpnn.Sequential([xpnn.Dense(2, 2), lambda x: x])


def test_dense_and_dropout_reject_bad_arguments():
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        xpnn.Dense(2, 2, init="xavier")
    with pytest.raises(ValueError, match=r"Dropout: rate must be in \[0, 1\), got 1.0"):
        xpnn.Dropout(1.0)


def test_unknown_backend_names_the_choices():
    with pytest.raises(
        ValueError, match="unknown backend 'tensorflow'; expected one of numpy, array_api_strict"
    ):
        xpnn.Sequential([xpnn.Dense(2, 2)]).to("tensorflow")

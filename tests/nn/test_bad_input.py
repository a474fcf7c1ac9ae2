"""Issue 13: every bad input to a layer gets a named XpnnError, before anything changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend


def _model() -> xpnn.Sequential:
    return xpnn.Sequential([xpnn.Dense(3, 4), xpnn.ReLU(), xpnn.Dense(4, 2)], seed=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reset_parameters_keeps_the_backend_and_dtype_of_the_parameters(
    bk: backend.Backend, dtype: str
) -> None:
    model = _model().to(bk.name, dtype=dtype)
    model.reset_parameters(5)
    for p in model.parameters():
        assert backend.backend_name(p.value) == bk.name and backend.dtype_name(p.value.dtype) == dtype


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool", "bogus", "complex64", 3])
def test_to_a_non_floating_dtype_is_a_dtype_error_naming_the_model_and_changes_nothing(dtype: Any) -> None:
    model = _model()
    before = [backend.to_host(p.value) for p in model.parameters()]
    with pytest.raises(
        xpnn.DTypeError, match=r"Sequential\(3 layers\)\.to: expected dtype one of float32, float64"
    ):
        model.to("numpy", dtype=dtype)
    for p, old in zip(model.parameters(), before, strict=True):
        assert p.value.dtype == np.float32
        np.testing.assert_array_equal(p.value, old)


def test_to_a_non_floating_dtype_on_a_single_layer_names_the_layer() -> None:
    with pytest.raises(xpnn.DTypeError, match=r"Dense\(3 -> 4\)\.to: .*got 'int32'"):
        xpnn.Dense(3, 4).to("numpy", dtype="int32")


@pytest.mark.parametrize("n_in", ["4", 2.5, True, None, [4]])
def test_dense_sizes_that_are_not_integers_are_argument_type_errors(n_in: Any) -> None:
    with pytest.raises(xpnn.ArgumentTypeError, match=r"Dense: expected n_in to be an integer, got"):
        xpnn.Dense(n_in, 3)


@pytest.mark.parametrize("n_out", [0, -2])
def test_dense_sizes_below_one_are_argument_errors(n_out: int) -> None:
    with pytest.raises(xpnn.ArgumentError, match=rf"Dense: expected n_out >= 1, got {n_out}"):
        xpnn.Dense(3, n_out)


def test_dense_accepts_any_integral_size() -> None:
    layer = xpnn.Dense(np.int64(3), np.uint8(2))
    assert (layer.n_in, layer.n_out) == (3, 2) and type(layer.n_in) is int


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: xpnn.Dense(2, 2, weight_regularizer_l2=float("nan")), "weight_regularizer_l2"),
        (lambda: xpnn.Dense(2, 2, bias_regularizer_l1=-1.0), "bias_regularizer_l1"),
        (lambda: xpnn.Dropout("0.5"), "Dropout: expected rate to be a number"),
        (lambda: xpnn.Dropout(float("nan")), "Dropout: expected rate"),
        (lambda: xpnn.LeakyReLU(float("inf")), "LeakyReLU: expected alpha"),
        (lambda: xpnn.Dropout(0.5, seed=0.0), "Dropout: expected seed to be an integer, got float"),
        (lambda: xpnn.Dense(2, 2, seed=-1), "Dense: expected seed >= 0, got -1"),
        (lambda: xpnn.Sequential([], seed="0"), "Sequential: expected seed to be an integer"),
    ],
)
def test_layer_hyperparameters_out_of_range_are_argument_errors(build: Any, match: str) -> None:
    with pytest.raises(xpnn.ArgumentError, match=match):
        build()


LAYERS = {
    "Dense": lambda: xpnn.Dense(3, 3),
    "ReLU": xpnn.ReLU,
    "LeakyReLU": xpnn.LeakyReLU,
    "Sigmoid": xpnn.Sigmoid,
    "Tanh": xpnn.Tanh,
    "Softmax": xpnn.Softmax,
    "Dropout": lambda: xpnn.Dropout(0.5),
    "Flatten": xpnn.Flatten,
}


@pytest.mark.parametrize("name", LAYERS)
def test_backward_before_forward_is_a_forward_first_error_naming_the_layer(name: str) -> None:
    with pytest.raises(xpnn.ForwardFirstError, match=rf"{name}\(.*\)\.backward: called before forward"):
        LAYERS[name]().backward(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("loss", [xpnn.SoftmaxCrossEntropy, xpnn.CategoricalCrossEntropy, xpnn.MSE, xpnn.MAE])
def test_loss_backward_before_forward_is_a_forward_first_error(loss: Any) -> None:
    with pytest.raises(xpnn.ForwardFirstError, match=rf"{loss.__name__}\.backward: called before forward"):
        loss().backward()


def test_dense_backward_with_a_wrong_width_gradient_raises_before_touching_grad(to_bk: Any) -> None:
    layer = xpnn.Dense(3, 4).to(xpnn.backend.backend_name(to_bk(np.zeros(1, np.float32))))
    layer.forward(to_bk(np.ones((5, 3), np.float32)))
    with pytest.raises(
        xpnn.ShapeError, match=r"Dense\(3 -> 4\)\.backward: expected dout of shape \(5, 4\).*got \(5, 7\)"
    ):
        layer.backward(to_bk(np.ones((5, 7), np.float32)))
    assert layer.weight.grad is None and layer.bias.grad is None


def test_dense_backward_with_a_list_names_the_argument() -> None:
    layer = xpnn.Dense(2, 2)
    layer.forward(np.ones((1, 2), np.float32))
    with pytest.raises(
        xpnn.BackendMismatchError, match=r"Dense\(2 -> 2\)\.backward: expected dout to be an array"
    ):
        layer.backward([[1.0, 1.0]])


def test_a_checkpoints_unknown_counter_is_a_checkpoint_error_from_load_counters() -> None:
    with pytest.raises(xpnn.CheckpointError, match=r"Dropout: unknown counters \['training'\]"):
        xpnn.Dropout(0.5).load_counters({"training": 0})
    with pytest.raises(xpnn.CheckpointError, match=r"has no counters, got \['n_in'\]"):
        xpnn.Dense(2, 2).load_counters({"n_in": 7})


def test_softmax_cross_entropy_gradient_from_probabilities_changes_no_state(to_bk: Any) -> None:
    loss = xpnn.SoftmaxCrossEntropy()
    logits, labels = to_bk(np.array([[1.0, 2.0, 0.5]], np.float32)), to_bk(np.array([2]))
    loss.forward(logits, labels)
    expected = backend.to_host(loss.backward())
    state = {k: v for k, v in vars(loss).items()}
    other = to_bk(np.array([[0.2, 0.3, 0.5]], np.float32))
    xpnn.testing.assert_close(
        loss.gradient(other, labels), np.array([[0.2, 0.3, -0.5]]), rtol=1e-6, atol=1e-7
    )
    assert all(vars(loss)[k] is v for k, v in state.items())
    np.testing.assert_allclose(backend.to_host(loss.backward()), expected)

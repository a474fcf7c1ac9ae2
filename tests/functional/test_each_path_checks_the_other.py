"""Each path checks the other (DESIGN, Decision 1): every built-in layer's and loss's function
has a hand-written backward beside plain Array API forward equations. Run on Tensors, those
same equations record through the recording namespace, so the tape differentiates them
independently. For each layer (its function with the layer's own options) and each loss
function, one call is made both ways with the same inputs and a random upstream gradient,
and the recorded gradients equal the hand-written ones to rtol 1e-10 in float64 on every
backend. Fast paths take raw NumPy arrays only, so both sides run the plain code
(``fused=False``); the fast paths are tested equal to it elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest

import xpnn
from xpnn import Tensor, backend
from xpnn.autograd import Function
from xpnn.functional import activations, losses
from xpnn.functional.linear import LinearReLU, Penalty
from xpnn.functional.normalization import BatchNorm as BatchNormFunction
from xpnn.functional.normalization import Running
from xpnn.testing import assert_close

RNG_SEED = 5


class Call(NamedTuple):
    """One call of a Function: its inputs (host arrays; None where absent), which of them are
    differentiable, and its keyword options."""

    function: type[Function]
    inputs: list[np.ndarray | None]
    differentiable: list[bool]
    options: dict[str, Any]


def normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def on(bk: backend.Backend, a: np.ndarray | None) -> Any:
    return None if a is None else backend.from_host(a, bk)


def plain_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options with any fast path switched off (fast paths take raw NumPy arrays only)."""
    return {**options, "fused": False} if "fused" in options else dict(options)


def layer_call(bk: backend.Backend, layer: xpnn.Layer, x: np.ndarray) -> Call:
    """The call a layer makes on ``x``: its function, parameters and options (float64, on ``bk``)."""
    layer.to(bk, dtype="float64")
    for k, p in enumerate(layer.parameters()):  # not the initial ones and zeros: every term counts
        p.value = backend.from_host(normal(*p.shape, seed=10 + k), bk)
    options = plain_options(layer.options(backend.from_host(x, bk)))
    params = layer.inputs()
    return Call(
        layer.function,  # type: ignore[arg-type]
        [x, *(None if p is None else backend.to_host(p.value) for p in params)],
        [True, *(p is not None for p in params)],
        options,
    )


class LayerCase(NamedTuple):
    make: Callable[[], xpnn.Layer]
    x: np.ndarray


def batch_norm(training: bool) -> Callable[[], xpnn.Layer]:
    def make() -> xpnn.Layer:
        layer = xpnn.BatchNorm(3, momentum=0.2)
        layer.running_mean, layer.running_var = normal(3, seed=3), 0.5 + normal(3, seed=4) ** 2
        return layer.train(training)  # type: ignore[return-value]

    return make


IMAGES = 1.0 + 2.0 * normal(2, 3, 2, 3)
LAYERS: dict[str, LayerCase] = {
    "Dense": LayerCase(lambda: xpnn.Dense(3, 4), normal(5, 3)),
    "Dense_3d_input": LayerCase(lambda: xpnn.Dense(3, 2), normal(2, 4, 3)),
    "Conv2D": LayerCase(lambda: xpnn.Conv2D(2, 3, 3), normal(2, 2, 5, 5)),
    "Conv2D_stride_padding": LayerCase(
        lambda: xpnn.Conv2D(2, 3, (3, 2), stride=2, padding=1), normal(2, 2, 6, 5)
    ),
    "Conv2D_same_dilation": LayerCase(
        lambda: xpnn.Conv2D(2, 2, 3, padding="same", dilation=2), normal(1, 2, 6, 6)
    ),
    "Conv2D_groups_no_bias": LayerCase(
        lambda: xpnn.Conv2D(4, 2, 3, groups=2, bias=False), normal(1, 4, 5, 5)
    ),
    "MaxPool2D": LayerCase(lambda: xpnn.MaxPool2D(2), normal(2, 2, 4, 6)),
    "MaxPool2D_padding_ceil_mode": LayerCase(
        lambda: xpnn.MaxPool2D(3, stride=2, padding=1, ceil_mode=True), normal(1, 2, 6, 7)
    ),
    "AvgPool2D": LayerCase(lambda: xpnn.AvgPool2D(2), normal(2, 2, 4, 6)),
    "AvgPool2D_padding_ceil_mode": LayerCase(
        lambda: xpnn.AvgPool2D(3, stride=2, padding=1, ceil_mode=True), normal(1, 2, 6, 7)
    ),
    "GlobalAvgPool2D": LayerCase(xpnn.GlobalAvgPool2D, normal(2, 3, 3, 4)),
    "BatchNorm_training_features": LayerCase(batch_norm(True), 1.0 + 2.0 * normal(6, 3)),
    "BatchNorm_training_images": LayerCase(batch_norm(True), IMAGES),
    "BatchNorm_eval_images": LayerCase(batch_norm(False), IMAGES),
    "ReLU": LayerCase(xpnn.ReLU, normal(4, 5)),
    "LeakyReLU": LayerCase(lambda: xpnn.LeakyReLU(0.2), normal(4, 5)),
    "Sigmoid": LayerCase(xpnn.Sigmoid, normal(4, 5)),
    "Tanh": LayerCase(xpnn.Tanh, normal(4, 5)),
    "Softmax": LayerCase(xpnn.Softmax, normal(4, 5)),
    "Dropout": LayerCase(lambda: xpnn.Dropout(0.3, seed=2), normal(4, 5)),
}


def loss_call(loss: xpnn.Loss, pred: np.ndarray, target: np.ndarray) -> Callable[[backend.Backend], Call]:
    """A loss object's function and options for (pred, target); the target is a constant."""
    labels = np.issubdtype(target.dtype, np.integer)
    options = plain_options(loss.options(labels)) if hasattr(loss, "options") else {}
    if loss.function in (losses.CrossEntropy, losses.CategoricalCrossEntropy):
        options["labels"] = labels
    return lambda bk: Call(loss.function, [pred, target], [True, False], options)


LOGITS, LABELS = normal(5, 4), np.array([1, 0, 3, 3, 2])
PROBABILITIES = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
SIGMOID = 1.0 / (1.0 + np.exp(-normal(4, 3, seed=1)))
SOFT_TARGETS = np.random.default_rng(2).dirichlet(np.ones(4), size=5)


def cross_entropy(target: np.ndarray, **options: Any) -> Callable[[backend.Backend], Call]:
    fixed = {
        "labels": target.ndim == 1,
        "reduction": "mean",
        "label_smoothing": 0.0,
        "ignore_index": None,
        "fused": False,
        **options,
    }
    return lambda bk: Call(losses.CrossEntropy, [LOGITS, target], [True, False], fixed)


LOSSES: dict[str, Callable[[backend.Backend], Call]] = {
    "SoftmaxCrossEntropy": loss_call(xpnn.SoftmaxCrossEntropy(), LOGITS, LABELS),
    "SoftmaxCrossEntropy_smoothing_ignore_index": loss_call(
        xpnn.SoftmaxCrossEntropy(label_smoothing=0.1, ignore_index=3), LOGITS, LABELS
    ),
    "cross_entropy_sum": cross_entropy(LABELS, reduction="sum"),
    "cross_entropy_none_ignore_index": cross_entropy(LABELS, reduction="none", ignore_index=0),
    "cross_entropy_probabilities": cross_entropy(SOFT_TARGETS, label_smoothing=0.2),
    "CategoricalCrossEntropy_labels": loss_call(xpnn.CategoricalCrossEntropy(), PROBABILITIES, LABELS),
    "CategoricalCrossEntropy_one_hot": loss_call(
        xpnn.CategoricalCrossEntropy(), PROBABILITIES, np.eye(4)[LABELS]
    ),
    "BinaryCrossEntropy": loss_call(xpnn.BinaryCrossEntropy(), SIGMOID, (normal(4, 3, seed=3) > 0) * 1.0),
    "MSE": loss_call(xpnn.MSE(), normal(4, 3), normal(4, 3, seed=1)),
    "mse_sum": lambda bk: Call(
        losses.MeanSquaredError, [normal(4, 3), normal(4, 3, seed=1)], [True, False], {"reduction": "sum"}
    ),
    "mse_none": lambda bk: Call(
        losses.MeanSquaredError, [normal(4, 3), normal(4, 3, seed=1)], [True, False], {"reduction": "none"}
    ),
    "MAE": loss_call(xpnn.MAE(), normal(4, 3), normal(4, 3, seed=1)),
}

FUNCTIONS: dict[str, Callable[[backend.Backend], Call]] = {
    "linear_relu": lambda bk: Call(
        LinearReLU,
        [normal(5, 3), normal(3, 4, seed=1), normal(4, seed=2)],
        [True, True, True],
        {"fused": False},
    ),
    "penalty": lambda bk: Call(Penalty, [normal(3, 4)], [True], {"l1": 0.3, "l2": 0.05}),
    "log_softmax": lambda bk: Call(
        activations.LogSoftmax, [normal(3, 4, 2)], [True], {"axis": 1, "fused": False}
    ),
}


def recorded_gradients(bk: backend.Backend, call: Call, upstream: np.ndarray) -> tuple[Any, list[Any]]:
    """The function's plain forward run on Tensors (recording), and the tape's gradients."""
    leaves = [
        None if a is None else Tensor(on(bk, a), requires_grad=d)
        for a, d in zip(call.inputs, call.differentiable, strict=True)
    ]
    arguments = [t if t is None or t.requires_grad else t.value for t in leaves]
    y = call.function.forward(call.function.context(), *arguments, **call.options)
    assert isinstance(y, Tensor) and y.node is not None, "the plain forward recorded nothing"
    y.backward(on(bk, upstream))
    return y.value, [None if t is None or not t.requires_grad else t.grad for t in leaves]


def handwritten_gradients(bk: backend.Backend, call: Call) -> tuple[Any, list[Any], np.ndarray]:
    """The same call on plain arrays, its hand-written backward of a random upstream gradient,
    and that upstream gradient."""
    ctx = call.function.context()
    ctx.inputs = (None,) * len(call.inputs)
    ctx.needs = tuple(call.differentiable)
    y = call.function.forward(ctx, *(on(bk, a) for a in call.inputs), **call.options)
    upstream = normal(*backend.to_host(y).shape, seed=RNG_SEED)
    return y, list(call.function.backward(ctx, on(bk, upstream))), upstream


def check_both_paths(bk: backend.Backend, call: Call) -> None:
    handwritten_y, handwritten, upstream = handwritten_gradients(bk, call)
    recorded_y, recorded = recorded_gradients(bk, call, upstream)
    assert_close(recorded_y, handwritten_y, rtol=1e-10, atol=1e-14, what="recorded forward vs plain forward")
    for k, (mine, theirs) in enumerate(zip(recorded, handwritten, strict=False)):
        if not call.differentiable[k] or call.inputs[k] is None:
            continue
        assert theirs is not None and mine is not None, f"input {k}: a gradient is missing"
        assert_close(
            mine, theirs, rtol=1e-10, atol=1e-14, what=f"input {k}: recorded vs hand-written gradient"
        )


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_layer_hand_written_backward_equals_the_tape_through_its_plain_equations(name, bk):
    check_both_paths(bk, layer_call(bk, LAYERS[name].make(), LAYERS[name].x))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_hand_written_backward_equals_the_tape_through_its_plain_equations(name, bk):
    check_both_paths(bk, LOSSES[name](bk))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_without_a_layer_agrees_with_the_tape_likewise(name, bk):
    check_both_paths(bk, FUNCTIONS[name](bk))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_layer_called_on_a_tensor_records_one_node_holding_its_hand_written_backward(name, bk):
    layer = LAYERS[name].make().to(bk, dtype="float64")
    x = Tensor(on(bk, LAYERS[name].x), requires_grad=True)
    y = layer(x)
    assert y.node is not None and y.node.inputs[0] is x and y.node.name == layer.function.name
    assert y.node.vjp == layer.function.backward


def test_batch_norm_training_moves_the_running_statistics_alike_on_tensors_and_on_arrays(bk):
    moved = []
    for recording in (False, True):
        running = Running(on(bk, normal(3, seed=3)), on(bk, 1.0 + normal(3, seed=4) ** 2), 0.2)
        x = on(bk, IMAGES)
        x = Tensor(x, requires_grad=True) if recording else x
        BatchNormFunction.forward(BatchNormFunction.context(), x, training=True, running=running)
        assert not isinstance(running.mean, Tensor) and not isinstance(running.var, Tensor)
        moved.append(running)
    assert_close(moved[1].mean, moved[0].mean, rtol=1e-12, what="running mean")
    assert_close(moved[1].var, moved[0].var, rtol=1e-12, what="running variance")

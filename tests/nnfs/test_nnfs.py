"""xpnn.nnfs side by side with the NNFS book's own classes (tests/nnfs_book.py, plain NumPy).

Training on the spiral is chaotic (a 1e-7 nudge of one weight moves the final accuracy by
0.1), so the comparison is of what is deterministic: the epoch-0 loss and gradients, and
the weights after 1,000 epochs when both optimizers are fed the same gradients every epoch.
The reference runs in float64 from the same float32 initial weights and data.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import nnfs_book as book
from xpnn import nnfs
from xpnn.data.synthetic import spiral_data
from xpnn.errors import NotALayerError

EPOCHS = 1000
# The chapter-10 settings: (book optimizer name, keyword arguments, bound on loss / ln 3 by epoch 1000).
# Plain SGD at learning rate 1 learns slowly: the book's own classes reach 0.964 (no decay) and
# 0.968 (decay 1e-3) of ln 3 at epoch 1000 on this data (above 0.93 for every seed 0..7), so
# for those two the bound is "below 0.98 ln 3", not 0.7 ln 3.
SETTINGS = {
    "sgd": ("SGD", {}, 0.98),
    "sgd_decay": ("SGD", {"decay": 1e-3}, 0.98),
    "sgd_decay_momentum": ("SGD", {"decay": 1e-3, "momentum": 0.9}, 0.7),
    "adagrad_decay": ("Adagrad", {"decay": 1e-4}, 0.7),
    "rmsprop": ("RMSprop", {"learning_rate": 0.02, "decay": 1e-5, "rho": 0.999}, 0.7),
    "adam": ("Adam", {"learning_rate": 0.05, "decay": 5e-7}, 0.7),
}


@functools.cache
def _data_and_initial_weights() -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """The chapter's spiral and 2-64-3 initial weights, drawn as the book does after seed 0."""
    state = np.random.get_state()
    try:
        np.random.seed(0)
        x, y = spiral_data(samples=100, classes=3)
        first, second = nnfs.Layer_Dense(2, 64), nnfs.Layer_Dense(64, 3)
        weights = tuple(
            xpnn.backend.to_host(a) for a in (first.weights, first.biases, second.weights, second.biases)
        )
    finally:
        np.random.set_state(state)
    return x, y, weights


class _Net:
    """The chapter's network, built from ``classes`` (the book's module or xpnn.nnfs)."""

    def __init__(self, classes: Any, weights: tuple[Any, ...]) -> None:
        self.dense1, self.dense2 = classes.Layer_Dense(2, 64), classes.Layer_Dense(64, 3)
        self.activation1 = classes.Activation_ReLU()
        self.loss_activation = classes.Activation_Softmax_Loss_CategoricalCrossentropy()
        self.dense1.weights, self.dense1.biases, self.dense2.weights, self.dense2.biases = weights

    def forward_backward(self, x: Any, y: Any) -> Any:
        self.dense1.forward(x)
        self.activation1.forward(self.dense1.output)
        self.dense2.forward(self.activation1.output)
        loss = self.loss_activation.forward(self.dense2.output, y)
        self.loss_activation.backward(self.loss_activation.output, y)
        self.dense2.backward(self.loss_activation.dinputs)
        self.activation1.backward(self.dense2.dinputs)
        self.dense1.backward(self.activation1.dinputs)
        return loss

    def update(self, optimizer: Any) -> None:
        optimizer.pre_update_params()
        optimizer.update_params(self.dense1)
        optimizer.update_params(self.dense2)
        optimizer.post_update_params()

    def layers(self) -> tuple[Any, Any]:
        return self.dense1, self.dense2


def _book_net() -> tuple[_Net, np.ndarray, np.ndarray]:
    x, y, weights = _data_and_initial_weights()
    return _Net(book, tuple(w.astype(np.float64) for w in weights)), x.astype(np.float64), y


def _our_net(to_bk: Any) -> tuple[_Net, Any, Any]:
    x, y, weights = _data_and_initial_weights()
    return _Net(nnfs, tuple(to_bk(w) for w in weights)), to_bk(x), to_bk(y)


def _close(actual: Any, expected: np.ndarray, rtol: float, what: str) -> None:
    """Relative to the array's scale: a gradient entry near 0 is judged against the largest one."""
    xpnn.testing.assert_close(
        actual, expected, rtol=rtol, atol=rtol * float(np.max(np.abs(expected))), what=what
    )


def _within_1e6_of_the_summed_terms(actual: Any, expected: np.ndarray, terms: np.ndarray, what: str) -> None:
    """A float32 sum's error is relative to the sum of the terms' magnitudes, not to the sum:
    the last layer's dbiases sums 300 terms that cancel to a thousandth of their size."""
    error = np.abs(xpnn.backend.to_host(actual).astype(np.float64) - expected)
    worst = float(np.max(error - 1e-6 * terms))
    assert worst <= 0.0, (
        f"{what}: off by up to {float(np.max(error)):.3g}, more than 1e-6 of the summed terms"
    )


def test_epoch_0_loss_and_gradients_equal_the_books(to_bk: Any) -> None:
    ours, x, y = _our_net(to_bk)
    ref, x_ref, y_ref = _book_net()
    loss, ref_loss = ours.forward_backward(x, y), ref.forward_backward(x_ref, y_ref)
    assert abs(float(loss) - ref_loss) <= 1e-6 * ref_loss
    for i, (mine, theirs, dvalues) in enumerate(
        zip(ours.layers(), ref.layers(), (ref.activation1.dinputs, ref.loss_activation.dinputs), strict=True)
    ):
        size, inputs = np.abs(dvalues), np.abs(theirs.inputs)
        _within_1e6_of_the_summed_terms(mine.dweights, theirs.dweights, inputs.T @ size, f"dweights {i + 1}")
        _within_1e6_of_the_summed_terms(
            mine.dbiases, theirs.dbiases, size.sum(0, keepdims=True), f"dbiases {i + 1}"
        )
        weights = np.abs(theirs.weights)
        _within_1e6_of_the_summed_terms(mine.dinputs, theirs.dinputs, size @ weights.T, f"dinputs {i + 1}")


@pytest.mark.parametrize("setting", SETTINGS)
def test_fed_the_books_gradients_the_weights_match_after_1000_epochs(setting: str, to_bk: Any) -> None:
    kind, kwargs, _ = SETTINGS[setting]
    ref, x_ref, y_ref = _book_net()
    ours, _, _ = _our_net(to_bk)
    ref_optimizer = getattr(book, f"Optimizer_{kind}")(**kwargs)
    our_optimizer = getattr(nnfs, f"Optimizer_{kind}")(**kwargs)
    for _ in range(EPOCHS):
        ref.forward_backward(x_ref, y_ref)
        for mine, theirs in zip(ours.layers(), ref.layers(), strict=True):
            mine.dweights = to_bk(theirs.dweights.astype(np.float32))
            mine.dbiases = to_bk(theirs.dbiases.astype(np.float32))
        ref.update(ref_optimizer)
        ours.update(our_optimizer)
    assert our_optimizer.iterations == ref_optimizer.iterations == EPOCHS
    assert our_optimizer.current_learning_rate == pytest.approx(
        ref_optimizer.current_learning_rate, rel=1e-12
    )
    for i, (mine, theirs) in enumerate(zip(ours.layers(), ref.layers(), strict=True)):
        _close(mine.weights, theirs.weights, 1e-4, f"weights of layer {i + 1}")
        _close(mine.biases, theirs.biases, 1e-4, f"biases of layer {i + 1}")


def _losses_up_to_epoch_1000(net: _Net, optimizer: Any, x: Any, y: Any) -> list[Any]:
    losses = []
    for _ in range(EPOCHS):
        losses.append(net.forward_backward(x, y))
        net.update(optimizer)
    return [*losses, net.forward_backward(x, y)]


@functools.cache
def _book_losses(setting: str) -> list[float]:
    kind, kwargs, _ = SETTINGS[setting]
    ref, x, y = _book_net()
    optimizer = getattr(book, f"Optimizer_{kind}")(**kwargs)
    return [float(loss) for loss in _losses_up_to_epoch_1000(ref, optimizer, x, y)]


# Adam at lr 0.05 spikes now and then on this data (the book's own curves show it): on
# torch's float32 rounding path one run spikes in epochs 997-1000 (0.198 -> 2.195 -> 1.372)
# and an lr 1e-7 away does not. So "learned by epoch 1,000" is judged by the median loss of
# epochs 951-1,000, which a transient spike does not move; the last loss must be finite.
LAST = 50


@pytest.mark.parametrize("setting", SETTINGS)
def test_both_runs_learn_in_1000_epochs(setting: str, bk: xpnn.backend.Backend, to_bk: Any) -> None:
    kind, kwargs, bound = SETTINGS[setting]
    ours, x, y = _our_net(to_bk)
    losses = _losses_up_to_epoch_1000(ours, getattr(nnfs, f"Optimizer_{kind}")(**kwargs), x, y)
    assert xpnn.backend.dtype_name(losses[-1].dtype) == "float32"
    ours_late = [float(loss) for loss in losses[-LAST:]]
    assert math.isfinite(ours_late[-1])
    assert statistics.median(ours_late) <= bound * math.log(3)
    assert statistics.median(_book_losses(setting)[-LAST:]) <= bound * math.log(3)


def test_the_books_loop_runs_on_the_backends_arrays_with_its_accuracy(
    bk: xpnn.backend.Backend, to_bk: Any
) -> None:
    xp = bk.xp
    x, y, _ = _data_and_initial_weights()
    x, y = to_bk(x), to_bk(y)
    dense1, activation1, dense2 = nnfs.Layer_Dense(2, 64), nnfs.Activation_ReLU(), nnfs.Layer_Dense(64, 3)
    loss_activation = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = nnfs.Optimizer_Adam(learning_rate=0.05, decay=5e-7)
    for _ in range(200):
        dense1.forward(x)
        activation1.forward(dense1.output)
        dense2.forward(activation1.output)
        loss = loss_activation.forward(dense2.output, y)
        loss_activation.backward(loss_activation.output, y)
        dense2.backward(loss_activation.dinputs)
        activation1.backward(dense2.dinputs)
        dense1.backward(activation1.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()
    accuracy = xp.mean(
        xp.astype(xp.argmax(loss_activation.output, axis=1) == xp.astype(y, xp.int64), xp.float32)
    )
    assert xpnn.backend.backend_name(dense1.weights) == bk.name
    assert xpnn.backend.backend_name(optimizer.core.state[0]["exp_avg"]) == bk.name
    assert float(accuracy) > 0.6 and float(loss) < 0.8


def test_after_the_first_epoch_the_books_loop_never_syncs_with_the_host(
    to_bk: Any, no_host_sync: Any
) -> None:
    ours, x, y = _our_net(to_bk)
    optimizer = nnfs.Optimizer_Adam(learning_rate=0.05, decay=5e-7)
    ours.forward_backward(x, y)  # the first epoch moves the weights and checks the label values once
    ours.update(optimizer)
    with no_host_sync():
        for _ in range(3):
            ours.forward_backward(x, y)
            ours.update(optimizer)
    assert optimizer.iterations == 4


@pytest.fixture
def global_numpy_seed() -> Any:
    """Seed NumPy's global legacy generator as the book does, and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(0)
    yield
    np.random.set_state(state)


def test_layer_dense_draws_the_books_weights_from_the_global_generator(global_numpy_seed: None) -> None:
    ours = nnfs.Layer_Dense(2, 64)
    np.random.seed(0)
    theirs = book.Layer_Dense(2, 64)
    assert ours.weights.dtype == np.float32 and ours.biases.shape == (1, 64)
    np.testing.assert_allclose(ours.weights, theirs.weights, rtol=1e-7)
    np.testing.assert_array_equal(ours.biases, theirs.biases)


def test_under_nnfs_init_the_books_weights_and_data_are_bit_identical() -> None:
    # nnfs.init() patches numpy for the whole process: run it in a subprocess
    here = Path(__file__).resolve().parent
    path = os.pathsep.join([str(here.parents[1]), os.environ.get("PYTHONPATH", "")])  # the repo root
    done = subprocess.run(
        [sys.executable, str(here / "nnfs_init_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ok")


def test_the_layer_follows_its_inputs_backend_at_the_first_forward(
    bk: xpnn.backend.Backend, to_bk: Any
) -> None:
    layer = nnfs.Layer_Dense(2, 4)
    host = xpnn.backend.to_host(layer.weights)
    layer.forward(to_bk(np.ones((3, 2), np.float32)))
    assert xpnn.backend.backend_name(layer.weights) == xpnn.backend.backend_name(layer.output) == bk.name
    np.testing.assert_array_equal(xpnn.backend.to_host(layer.weights), host)
    np.testing.assert_allclose(
        xpnn.backend.to_host(layer.output), np.ones((3, 2), np.float32) @ host, rtol=1e-6
    )


def test_float64_data_of_the_nnfs_package_makes_the_layer_float64(to_bk: Any) -> None:
    layer = nnfs.Layer_Dense(2, 3)
    layer.forward(to_bk(np.ones((4, 2)), "float64"))  # nnfs.datasets without nnfs.init() gives float64
    assert (
        xpnn.backend.dtype_name(layer.weights.dtype)
        == xpnn.backend.dtype_name(layer.output.dtype)
        == "float64"
    )


def test_one_hot_targets_give_the_sparse_labels_numbers(to_bk: Any) -> None:
    logits = to_bk(np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32))
    labels = np.array([2, 0, 1, 2])
    sparse, one_hot = (
        nnfs.Activation_Softmax_Loss_CategoricalCrossentropy(),
        nnfs.Activation_Softmax_Loss_CategoricalCrossentropy(),
    )
    loss = sparse.forward(logits, to_bk(labels))
    sparse.backward(sparse.output, to_bk(labels))
    one_hot_loss = one_hot.forward(logits, to_bk(np.eye(3)[labels], "float64"))
    one_hot.backward(one_hot.output, to_bk(np.eye(3)[labels], "float64"))
    assert float(loss) == pytest.approx(float(one_hot_loss), rel=1e-6)
    assert xpnn.backend.dtype_name(one_hot.dinputs.dtype) == "float32"
    xpnn.testing.assert_close(one_hot.dinputs, sparse.dinputs, rtol=1e-6, atol=1e-8)


def test_after_the_first_forward_data_of_another_backend_is_refused(
    bk: xpnn.backend.Backend, to_bk: Any
) -> None:
    other = xpnn.backend.resolve("array_api_strict" if bk.name == "numpy" else "numpy")
    layer = nnfs.Layer_Dense(2, 4)
    layer.forward(to_bk(np.ones((3, 2), np.float32)))
    with pytest.raises(xpnn.BackendMismatchError, match="Dense"):
        layer.forward(xpnn.backend.from_host(np.ones((3, 2), np.float32), other))


def test_backward_overwrites_dweights_as_the_book_does(to_bk: Any) -> None:
    layer = nnfs.Layer_Dense(2, 3)
    layer.forward(to_bk(np.ones((5, 2), np.float32)))
    layer.backward(to_bk(np.ones((5, 3), np.float32)))
    layer.backward(to_bk(np.ones((5, 3), np.float32)))
    np.testing.assert_array_equal(xpnn.backend.to_host(layer.dweights), np.full((2, 3), 5.0, np.float32))
    np.testing.assert_array_equal(xpnn.backend.to_host(layer.dbiases), np.full((1, 3), 5.0, np.float32))


def test_separate_softmax_and_loss_give_the_fused_numbers(to_bk: Any) -> None:
    rng = np.random.default_rng(1)
    logits, labels = (
        to_bk(rng.normal(size=(6, 3)).astype(np.float32)),
        to_bk(np.array([0, 2, 1, 1, 0, 2], np.uint8)),
    )
    softmax, loss = nnfs.Activation_Softmax(), nnfs.Loss_CategoricalCrossentropy()
    softmax.forward(logits)
    value = loss.calculate(softmax.output, labels)
    loss.backward(softmax.output, labels)
    softmax.backward(loss.dinputs)
    fused = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    fused_value = fused.forward(logits, labels)
    fused.backward(fused.output, labels)
    assert float(value) == pytest.approx(float(fused_value), rel=1e-6)
    xpnn.testing.assert_close(softmax.dinputs, fused.dinputs, rtol=1e-5, atol=1e-7)


def test_regularization_loss_is_the_books_penalty(to_bk: Any) -> None:
    layer = nnfs.Layer_Dense(
        2, 3, weight_regularizer_l1=1e-3, weight_regularizer_l2=5e-4, bias_regularizer_l2=2e-4
    )
    w = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)
    layer.weights, layer.biases = to_bk(w), to_bk(np.ones((1, 3), np.float32))
    expected = 1e-3 * np.abs(w).sum() + 5e-4 * (w**2).sum() + 2e-4 * 3
    assert float(nnfs.Loss().regularization_loss(layer)) == pytest.approx(expected, rel=1e-6)
    assert nnfs.Loss().regularization_loss(nnfs.Layer_Dense(2, 3)) == 0.0


def test_update_params_alone_updates_weights_as_in_the_chapters_first_loop(to_bk: Any) -> None:
    layer = nnfs.Layer_Dense(2, 3)
    layer.forward(to_bk(np.ones((4, 2), np.float32)))
    layer.backward(to_bk(np.ones((4, 3), np.float32)))
    before = xpnn.backend.to_host(layer.weights)
    optimizer = nnfs.Optimizer_SGD(learning_rate=0.5)
    optimizer.update_params(layer)
    optimizer.update_params(layer)
    np.testing.assert_allclose(xpnn.backend.to_host(layer.weights), before - 2 * 0.5 * 4.0, rtol=1e-6)
    assert optimizer.iterations == 0 and optimizer.current_learning_rate == 0.5


def test_one_core_optimizer_holds_every_layers_parameters(to_bk: Any) -> None:
    ours, x, y = _our_net(to_bk)
    optimizer = nnfs.Optimizer_RMSprop(learning_rate=0.02, rho=0.999)
    ours.forward_backward(x, y)
    ours.update(optimizer)
    assert isinstance(optimizer.core, xpnn.RMSProp)
    assert len(optimizer.core.parameters()) == 4 and sorted(optimizer.core.state) == [0, 1, 2, 3]
    assert optimizer.core.state_dict()["param_groups"][1]["rho"] == 0.999


# -- bad input ---------------------------------------------------------------------------------------
def test_update_params_on_a_layer_without_weights_names_it() -> None:
    with pytest.raises(
        xpnn.OptimizerError, match=r"Optimizer_Adam.update_params: .*weights.*Activation_ReLU"
    ):
        nnfs.Optimizer_Adam().update_params(nnfs.Activation_ReLU())


def test_regularization_loss_of_a_non_layer_raises_not_a_layer_error_naming_it() -> None:
    with pytest.raises(
        NotALayerError,
        match=r"Loss_CategoricalCrossentropy.regularization_loss: .*Layer_Dense.*got Activation_ReLU",
    ) as caught:
        nnfs.Loss_CategoricalCrossentropy().regularization_loss(nnfs.Activation_ReLU())
    assert isinstance(caught.value, TypeError)  # still caught by the TypeError the method raised before


def test_update_params_before_backward_says_so(to_bk: Any) -> None:
    with pytest.raises(xpnn.OptimizerError, match=r"Layer_Dense has no gradient .*call backward"):
        nnfs.Optimizer_SGD().update_params(nnfs.Layer_Dense(2, 3))


@pytest.mark.parametrize("loss", ["fused", "separate"])
def test_labels_of_the_wrong_length_name_both_lengths(loss: str, to_bk: Any) -> None:
    probabilities = to_bk(np.full((300, 3), 1 / 3, np.float32))
    labels = to_bk(np.zeros(299, np.uint8))
    if loss == "fused":
        who, call = (
            "Activation_Softmax_Loss_CategoricalCrossentropy",
            nnfs.Activation_Softmax_Loss_CategoricalCrossentropy().forward,
        )
    else:
        who, call = "Loss_CategoricalCrossentropy", nnfs.Loss_CategoricalCrossentropy().calculate
    with pytest.raises(xpnn.LabelError, match=rf"{who}: expected y_true .*300 labels .*got 299"):
        call(probabilities, labels)


def test_labels_out_of_range_are_refused(to_bk: Any) -> None:
    loss = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    with pytest.raises(xpnn.LabelError, match=r"\[0, 3\)"):
        loss.forward(to_bk(np.zeros((2, 3), np.float32)), to_bk(np.array([0, 3], np.uint8)))


def test_assigning_weights_of_the_wrong_shape_names_both_shapes() -> None:
    with pytest.raises(xpnn.ShapeError, match=r"Layer_Dense.weights: expected shape \(2, 3\), got \(3, 2\)"):
        nnfs.Layer_Dense(2, 3).weights = np.zeros((3, 2), np.float32)


# -- the book's numbers (issue 13 items 1 and 8) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "kwargs", "printed"),
    [
        ("Adagrad", {"decay": 1e-4}, 9.908),
        ("RMSprop", {"learning_rate": 0.02, "decay": 1e-5, "rho": 0.999}, 8.841),
    ],
)
def test_the_chapter_10_loops_give_the_books_epoch_2_loss(
    kind: str, kwargs: dict[str, float], printed: float, to_bk: Any
) -> None:
    ours, x, y = _our_net(to_bk)
    ref, x_ref, y_ref = _book_net()
    mine, theirs = getattr(nnfs, f"Optimizer_{kind}")(**kwargs), getattr(book, f"Optimizer_{kind}")(**kwargs)
    for _ in range(2):
        ours.forward_backward(x, y)
        ours.update(mine)
        ref.forward_backward(x_ref, y_ref)
        ref.update(theirs)
    loss, ref_loss = float(ours.forward_backward(x, y)), float(ref.forward_backward(x_ref, y_ref))
    assert round(ref_loss, 3) == printed
    assert loss == pytest.approx(ref_loss, rel=1e-4)


def _confident_and_wrong() -> tuple[np.ndarray, np.ndarray]:
    logits = np.array([[40.0, 0.0, 0.0], [0.0, -30.0, 25.0], [1.0, 2.0, 3.0]], np.float32)
    return logits, np.array([1, 1, 2])


def test_the_fused_loss_is_the_books_clipped_mean_on_confident_wrong_predictions(to_bk: Any) -> None:
    logits, labels = _confident_and_wrong()
    ours = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy().forward(to_bk(logits), to_bk(labels))
    theirs = book.Activation_Softmax_Loss_CategoricalCrossentropy().forward(logits.astype(np.float64), labels)
    assert theirs < 12.0  # the clip: two samples at most -log(1e-7) = 16.1 each, not 40 and 55
    assert float(ours) == pytest.approx(theirs, rel=1e-5)


def test_the_core_softmax_cross_entropy_stays_exact_on_the_same_logits(to_bk: Any) -> None:
    logits, labels = _confident_and_wrong()
    exact = xpnn.SoftmaxCrossEntropy().forward(to_bk(logits), to_bk(labels))
    shifted = logits.astype(np.float64) - logits.max(1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(1)) - shifted[np.arange(3), labels])
    assert float(exact) == pytest.approx(expected, rel=1e-5) and expected > 25.0


def test_loss_forward_returns_the_per_sample_losses_and_calculate_their_mean(to_bk: Any) -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.2, 0.5, 0.3]], np.float32)
    labels = np.array([0, 0, 1])
    loss = nnfs.Loss_CategoricalCrossentropy()
    per_sample = loss.forward(to_bk(probabilities), to_bk(labels))
    expected = book.Loss_CategoricalCrossentropy().forward(probabilities.astype(np.float64), labels)
    assert tuple(per_sample.shape) == (3,)
    xpnn.testing.assert_close(per_sample, expected, rtol=1e-5, atol=0.0)
    assert float(loss.calculate(to_bk(probabilities), to_bk(labels))) == pytest.approx(
        expected.mean(), rel=1e-5
    )


def test_labels_changed_in_place_between_calls_give_the_new_labels_loss() -> None:
    logits = np.random.default_rng(3).normal(size=(6, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.uint8)
    loss = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    loss.forward(logits, labels)
    labels[:] = [2, 2, 0, 1, 0, 1]
    again = loss.forward(logits, labels)
    fresh = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy().forward(logits, labels.copy())
    assert float(again) == pytest.approx(float(fresh), rel=1e-7)


def test_a_host_label_mutated_to_minus_one_after_its_check_gives_a_nan_loss_and_nan_gradient_row() -> None:
    logits = np.zeros((3, 3), np.float32)
    labels = np.array([0, 1, 2], np.int8)
    loss = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    loss.forward(logits, labels)
    loss.backward(loss.output, labels)
    labels[2] = -1  # the same array: no second host check, the device guard takes over
    assert math.isnan(float(loss.forward(logits, labels)))
    loss.backward(loss.output, labels)
    rows = np.isnan(xpnn.backend.to_host(loss.dinputs)).all(axis=1)
    assert rows.tolist() == [False, False, True]


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_the_fused_backward_checks_label_values(labels: list[int], to_bk: Any) -> None:
    loss = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    with pytest.raises(xpnn.LabelError, match=r"labels must be in \[0, 3\)"):
        loss.backward(to_bk(np.full((2, 3), 1 / 3, np.float32)), to_bk(np.array(labels, np.int64)))


def test_the_fused_backward_checks_the_label_count(to_bk: Any) -> None:
    loss = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    with pytest.raises(xpnn.LabelError, match=r"300 labels .*got 299"):
        loss.backward(to_bk(np.full((300, 3), 1 / 3, np.float32)), to_bk(np.zeros(299, np.uint8)))


def test_the_fused_backward_leaves_the_core_losss_state_alone(to_bk: Any) -> None:
    loss = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    probabilities, labels = to_bk(np.full((2, 3), 1 / 3, np.float32)), to_bk(np.array([0, 2]))
    loss.backward(probabilities, labels)
    core = vars(loss._gradient)
    assert not {"pred", "target", "probs", "labels"} & set(core), sorted(core)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reset_parameters_of_the_books_layer_keeps_backend_and_dtype(dtype: str, to_bk: Any) -> None:
    layer = nnfs.Layer_Dense(2, 3)
    layer.forward(to_bk(np.ones((4, 2)), dtype))
    layer.dense.reset_parameters(xpnn.backend.host_rng(1))
    for value in (layer.weights, layer.biases):
        assert xpnn.backend.backend_name(value) == xpnn.backend.backend_name(layer.output)
        assert xpnn.backend.dtype_name(value.dtype) == dtype

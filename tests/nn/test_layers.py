"""Layers: finite-difference gradients, dtypes, accumulation, dropout, errors."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.testing import check_gradients

RNG = np.random.default_rng(1234)


def _x(shape: tuple[int, ...], away_from_zero: bool = False) -> np.ndarray:
    x = RNG.standard_normal(shape)
    if away_from_zero:  # keep finite differences off the kink of ReLU-like layers
        x = np.where(np.abs(x) < 0.05, 0.3, x)
    return x


class FrozenDropout(xpnn.Dropout):
    """Dropout whose mask does not change between calls (for finite differences)."""

    def forward(self, x):  # type: ignore[no-untyped-def]
        self.step = 0
        return super().forward(x)


LAYERS = {
    "Dense": lambda: xpnn.Dense(5, 4, seed=0),
    "Dense_regularized": lambda: xpnn.Dense(
        5, 4, seed=0, weight_regularizer_l1=1e-2, weight_regularizer_l2=5e-3, bias_regularizer_l2=1e-2
    ),
    "ReLU": xpnn.ReLU,
    "LeakyReLU": lambda: xpnn.LeakyReLU(0.1),
    "Sigmoid": xpnn.Sigmoid,
    "Tanh": xpnn.Tanh,
    "Softmax": xpnn.Softmax,
    "Dropout": lambda: FrozenDropout(0.4, seed=3),
    "Flatten": xpnn.Flatten,
}


def _input_for(name: str) -> np.ndarray:
    if name == "Flatten":
        return _x((3, 2, 5))
    return _x((6, 5), away_from_zero=True)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradients_match_finite_differences(name, bk, to_bk):
    layer = LAYERS[name]().to(bk, dtype="float64")
    errors = check_gradients(layer, to_bk(_input_for(name), "float64"))
    assert set(errors) == {"input"} | {p.name for p in layer.parameters()}


def test_sequential_gradients_match_finite_differences(bk, to_bk):
    model = xpnn.Sequential(
        [xpnn.Flatten(), xpnn.Dense(6, 7), xpnn.Tanh(), xpnn.Dense(7, 3), xpnn.Softmax()], seed=0
    ).to(bk.name, dtype="float64")
    check_gradients(model, to_bk(_x((4, 2, 3)), "float64"))


def test_check_gradients_fails_on_a_wrong_backward(bk, to_bk):
    class WrongTanh(xpnn.Layer):  # the book's way: forward and backward on arrays, state on self
        def forward(self, x):  # type: ignore[no-untyped-def]
            self.y = bk.xp.tanh(x)
            return self.y

        def backward(self, dout):  # type: ignore[no-untyped-def]
            return dout * (1.0 - self.y)  # forgot the square

    with pytest.raises(AssertionError, match="dL/dinput"):
        check_gradients(WrongTanh(), to_bk(_x((4, 3)), "float64"))


def test_check_gradients_fails_on_a_wrong_parameter_gradient(bk, to_bk):
    class WrongDense(xpnn.Dense):
        def backward(self, dout):  # type: ignore[no-untyped-def]
            dx = super().backward(dout)
            self.bias.grad = self.bias.grad * 2.0
            return dx

    with pytest.raises(AssertionError, match="dL/dbias"):
        check_gradients(WrongDense(3, 2).to(bk, dtype="float64"), to_bk(_x((4, 3)), "float64"))


def test_dense_regularizers_add_the_books_penalty_and_gradient(bk, to_bk):
    layer = xpnn.Dense(
        5,
        4,
        seed=0,
        weight_regularizer_l1=1e-2,
        weight_regularizer_l2=5e-3,
        bias_regularizer_l1=2e-2,
        bias_regularizer_l2=1e-2,
    ).to(bk, dtype="float64")
    layer.bias.value = to_bk(_x((4,)), "float64")
    w, b = backend.to_host(layer.weight.value), backend.to_host(layer.bias.value)
    expected = 1e-2 * np.abs(w).sum() + 5e-3 * (w * w).sum() + 2e-2 * np.abs(b).sum() + 1e-2 * (b * b).sum()
    assert float(layer.regularization_loss()) == pytest.approx(expected, rel=1e-12)
    x = to_bk(_x((6, 5)), "float64")
    dy = to_bk(_x((6, 4)), "float64")
    layer.forward(x)
    layer.backward(dy)
    xh, dyh = backend.to_host(x), backend.to_host(dy)
    expected_dw = xh.T @ dyh + 1e-2 * np.where(w < 0, -1.0, 1.0) + 2 * 5e-3 * w
    xpnn.testing.assert_close(layer.weight.grad, expected_dw, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_float32_in_gives_float32_out_forward_and_backward(name, bk, xp, to_bk):
    layer = LAYERS[name]().to(bk)
    x = to_bk(_input_for(name), "float32")
    y = layer.forward(x)
    dx = layer.backward(xp.ones_like(y))
    assert y.dtype == xp.float32 and dx.dtype == xp.float32
    for p in layer.parameters():
        assert p.value.dtype == xp.float32 and p.grad.dtype == xp.float32


def test_backward_adds_into_grad_across_micro_batches(bk, to_bk):
    layer = xpnn.Dense(3, 2, seed=0).to(bk, dtype="float64")
    x1, x2 = to_bk(_x((4, 3)), "float64"), to_bk(_x((5, 3)), "float64")
    dy1, dy2 = to_bk(_x((4, 2)), "float64"), to_bk(_x((5, 2)), "float64")
    layer.forward(x1)
    layer.backward(dy1)
    layer.forward(x2)
    layer.backward(dy2)
    expected = backend.to_host(x1).T @ backend.to_host(dy1) + backend.to_host(x2).T @ backend.to_host(dy2)
    xpnn.testing.assert_close(layer.weight.grad, expected, rtol=1e-12)


def test_sequential_skips_the_first_layers_input_gradient_unless_asked(bk, to_bk):
    model = xpnn.Sequential([xpnn.Dense(3, 4), xpnn.ReLU(), xpnn.Dense(4, 2)], seed=0).to(bk.name)
    x, dy = to_bk(_x((5, 3)), "float32"), to_bk(_x((5, 2)), "float32")
    model.forward(x)
    assert model.backward(dy) is None
    model.zero_grad()
    model.forward(x)
    assert tuple(model.backward(dy, input_grad=True).shape) == (5, 3)


def test_same_seed_same_numbers_on_every_backend(bk, to_bk):
    def run(name: str, move):  # type: ignore[no-untyped-def]
        model = xpnn.Sequential(
            [
                xpnn.Dense(8, 16),
                xpnn.ReLU(),
                xpnn.Dense(16, 16, init="he_normal"),
                xpnn.Tanh(),
                xpnn.Dense(16, 4, init="he_uniform"),
            ],
            seed=7,
        ).to(name)
        x = move(np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32))
        y = move(np.arange(10) % 4, "int64")
        loss_fn = xpnn.SoftmaxCrossEntropy()
        out = model.forward(x)
        loss = loss_fn.forward(out, y)
        model.backward(loss_fn.backward())
        return [out, loss] + [p.grad for p in model.parameters()]

    reference = run("numpy", lambda a, dtype=None: np.asarray(a, dtype=dtype))
    for got, want in zip(run(bk.name, to_bk), reference, strict=True):
        xpnn.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_dropout_is_identity_in_eval_and_scaled_mask_in_training(bk, xp, to_bk):
    layer = xpnn.Dropout(0.25, seed=0).to(bk)
    x = to_bk(np.ones((200, 50)), "float32")
    out = backend.to_host(layer.forward(x))
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.2 < (out == 0).mean() < 0.3
    layer.eval()
    assert np.array_equal(backend.to_host(layer.forward(x)), np.ones((200, 50)))


def test_dropout_masks_are_a_function_of_seed_epoch_and_step(bk, to_bk):
    x = to_bk(np.ones((8, 30)), "float32")
    first = xpnn.Dropout(0.5, seed=1)
    a, b = backend.to_host(first.forward(x)), backend.to_host(first.forward(x))
    again = xpnn.Dropout(0.5, seed=1)
    assert np.array_equal(backend.to_host(again.forward(x)), a)
    assert not np.array_equal(a, b)  # the step counter moved on
    again.epoch, again.step = 0, 1
    assert np.array_equal(backend.to_host(again.forward(x)), b)


def test_forward_and_backward_never_convert_to_host(bk, to_bk, no_host_sync):
    model = xpnn.Sequential(
        [
            xpnn.Dense(6, 8),
            xpnn.LeakyReLU(),
            xpnn.Dropout(0.2),
            xpnn.Dense(8, 8),
            xpnn.Sigmoid(),
            xpnn.Dense(8, 3),
        ],
        seed=0,
    ).to(bk.name)
    loss_fn = xpnn.SoftmaxCrossEntropy(validate=False)
    x, y = to_bk(_x((5, 6)), "float32"), to_bk(np.array([0, 1, 2, 1, 0]), "int64")
    with no_host_sync():
        loss = loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        model.regularization_loss()
    assert np.isfinite(backend.to_host(loss))


def test_sequential_summary_counts_parameters():
    model = xpnn.Sequential([xpnn.Dense(784, 256), xpnn.ReLU(), xpnn.Dense(256, 10)], seed=0)
    summary = model.summary()
    assert "Dense(784 -> 256)" in summary and "total parameters: 203,530" in summary


def test_sequential_same_seed_same_weights_different_seed_different_weights():
    def weights(seed: int) -> np.ndarray:
        return xpnn.Sequential([xpnn.Dense(4, 3)], seed=seed)[0].weight.value

    assert np.array_equal(weights(5), weights(5))
    assert not np.array_equal(weights(5), weights(6))


@pytest.mark.parametrize("init", ["glorot_uniform", "he_normal", "he_uniform", "nnfs"])
def test_dense_initialisers_have_the_documented_scale(init):
    w = xpnn.Dense(400, 300, init=init, seed=0).weight.value
    expected_std = {
        "glorot_uniform": (6 / 700) ** 0.5 / 3**0.5,
        "he_normal": (2 / 400) ** 0.5,
        "he_uniform": (6 / 400) ** 0.5 / 3**0.5,
        "nnfs": 0.01,
    }[init]
    assert w.dtype == np.float32 and w.std() == pytest.approx(expected_std, rel=0.02)


def test_leaky_relu_matches_its_definition_exactly(bk, to_bk):
    x = _x((50, 7))
    dy = _x((50, 7))
    layer = xpnn.LeakyReLU(0.01).to(bk)
    y = backend.to_host(layer.forward(to_bk(x, "float32")))
    dx = backend.to_host(layer.backward(to_bk(dy, "float32")))
    x32, dy32 = x.astype(np.float32), dy.astype(np.float32)
    assert np.array_equal(y, np.where(x32 > 0, x32, np.float32(0.01) * x32))
    assert np.array_equal(dx, np.where(x32 > 0, dy32, dy32 * np.float32(0.01)))


def test_relu_backward_is_zero_where_the_input_was_not_positive(bk, to_bk):
    x = np.array([[-1.0, 0.0, 2.0]])
    layer = xpnn.ReLU()
    layer.forward(to_bk(x, "float32"))
    assert np.array_equal(
        backend.to_host(layer.backward(to_bk(np.array([[5.0, 6.0, 7.0]]), "float32"))), [[0, 0, 7]]
    )

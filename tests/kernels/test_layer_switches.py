"""The layers' fast paths sit beside their plain expressions: ``fused = False`` on the class (or
one layer) never calls :mod:`xpnn.kernels`, and both give the same numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.kernels import compile, cross_entropy, dense

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

LAYER_OPS = {"affine": dense, "matmul": dense, "sum_rows": dense}
LAYER_OPS |= {name: cross_entropy for name in ("row_max", "row_sum", "take_at_labels", "add_at_labels")}


def _refuse_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, module in LAYER_OPS.items():

        def refuse(*args: Any, _name: str = name, **kwargs: Any) -> None:
            raise AssertionError(f"{_name} called with fused = False")

        monkeypatch.setattr(module, name, refuse)

    def refuse_numba(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("dense.relu_grad called with fused = False")

    monkeypatch.setattr(dense, "relu_grad", refuse_numba)


def _count_fast_paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = dict.fromkeys(LAYER_OPS, 0)
    for name, module in LAYER_OPS.items():
        real = getattr(module, name)

        def count(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, count)
    return calls


def _train_step(to_bk: Any, loss_fn: Any, head: list[Any]) -> list[np.ndarray]:
    """One forward/backward of a small model; returns the loss, dx-free gradients and output."""
    rng = np.random.default_rng(0)
    model = xpnn.Sequential([xpnn.Dense(6, 5, seed=1), xpnn.ReLU(), xpnn.Dense(5, 3, seed=2), *head], seed=0)
    model.to(backend.backend_name(to_bk(np.zeros(1))))
    x, y = to_bk(rng.standard_normal((8, 6)), "float32"), to_bk(rng.integers(0, 3, 8), "int64")
    out = model.forward(x)
    loss = loss_fn.forward(out, y)
    model.backward(loss_fn.backward())
    return [backend.to_host(loss), backend.to_host(out)] + [
        backend.to_host(p.grad) for p in model.parameters()
    ]


CLASSES = (xpnn.Dense, xpnn.ReLU, xpnn.Softmax, xpnn.SoftmaxCrossEntropy, xpnn.CategoricalCrossEntropy)
SETUPS = {
    "softmax_cross_entropy": (xpnn.SoftmaxCrossEntropy, []),
    "softmax_then_cross_entropy": (xpnn.CategoricalCrossEntropy, [xpnn.Softmax()]),
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_fused_false_on_every_class_never_calls_a_fast_path(
    setup: str, bk: Any, to_bk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for cls in CLASSES:
        monkeypatch.setattr(cls, "fused", False)
    _refuse_fast_paths(monkeypatch)
    loss, head = SETUPS[setup]
    _train_step(to_bk, loss(), head)


@pytest.mark.parametrize("setup", list(SETUPS))
def test_fused_true_calls_the_fast_paths_on_numpy(setup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile, "enabled", False)  # numba's loss and ReLU kernels replace some
    calls = _count_fast_paths(monkeypatch)
    loss, head = SETUPS[setup]
    _train_step(np.asarray, loss(), head)
    used = {name for name, count in calls.items() if count}
    expected = {"affine", "matmul", "sum_rows", "take_at_labels"}
    expected |= (
        {"row_max", "row_sum", "add_at_labels"}
        if setup == "softmax_cross_entropy"
        else {"row_max", "row_sum"}
    )
    assert used == expected


@pytest.mark.parametrize("setup", list(SETUPS))
def test_fused_and_plain_layers_give_the_same_bits(
    setup: str, bk: Any, to_bk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loss, head = SETUPS[setup]
    fused = _train_step(to_bk, loss(), head)
    for cls in CLASSES:
        monkeypatch.setattr(cls, "fused", False)
    plain = _train_step(to_bk, loss(), [type(layer)() for layer in head])
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_one_dense_layer_can_switch_off_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_fast_paths(monkeypatch)
    layer = xpnn.Dense(4, 2, seed=0)
    layer.fused = False
    layer.forward(np.ones((3, 4), np.float32))
    layer.backward(np.ones((3, 2), np.float32))
    assert calls["affine"] == calls["matmul"] == calls["sum_rows"] == 0 and xpnn.Dense.fused is True


def test_dense_plain_backward_equals_the_gradient_written_into_the_flat_buffer() -> None:
    results = []
    for fused in (True, False):
        model = xpnn.Sequential([xpnn.Dense(6, 5), xpnn.Dense(5, 3)], seed=0)
        for layer in model.layers:
            layer.fused = fused
        opt = xpnn.SGD(model.parameters(), 0.1)
        loss_fn = xpnn.MSE()
        x, y = np.ones((4, 6), np.float32), np.zeros((4, 3), np.float32)
        for _ in range(3):
            loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
        results.append([p.value.copy() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)


PROBS = np.array([[0.0, 1.0, 0.5], [1e-9, 0.3, 1.0 - 1e-9]])


def test_the_book_clip_by_minimum_maximum_equals_clip(
    bk: Any, to_bk: Any, xp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pred, target = to_bk(PROBS, "float32"), to_bk(np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]), "float32")
    clipped = xp.clip(pred, 1e-7, 1.0 - 1e-7)
    expected = xp.mean(-(target * xp.log(clipped) + (1.0 - target) * xp.log(1.0 - clipped)))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("clip() called on the loss path")

    monkeypatch.setattr(xp, "clip", refuse)
    loss_fn = xpnn.BinaryCrossEntropy()
    assert float(loss_fn.forward(pred, target)) == float(expected)
    loss_fn.backward()
    xpnn.CategoricalCrossEntropy().forward(pred, to_bk(np.array([0, 2]), "int64"))


def test_mae_gradient_equals_sign_without_calling_it(
    bk: Any, to_bk: Any, xp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pred, target = (
        to_bk(np.array([[1.0, -2.0, 0.5]]), "float32"),
        to_bk(np.array([[0.0, -2.0, 1.0]]), "float32"),
    )
    expected = backend.to_host(xp.sign(pred - target) * (1.0 / 3))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("sign() called on the loss path")

    monkeypatch.setattr(xp, "sign", refuse)
    loss_fn = xpnn.MAE()
    loss_fn.forward(pred, target)
    assert np.array_equal(backend.to_host(loss_fn.backward()), expected)


def test_the_one_switch_off_runs_no_convolution_pooling_or_attention_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``xpnn.kernels.disabled()`` reaches the NumPy in-place forms too, not only numba's loops."""
    from xpnn.kernels import conv, transformer

    for name in ("conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward"):

        def refuse(*args: Any, _name: str = name, **kwargs: Any) -> None:
            raise AssertionError(f"{_name} called with the fast paths off")

        monkeypatch.setattr(conv, name, refuse)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    model = xpnn.Sequential([xpnn.Conv2D(2, 3, 3, padding=1), xpnn.MaxPool2D(2), xpnn.Flatten()], seed=0)
    with xpnn.kernels.disabled():
        x = xpnn.Tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32), requires_grad=True)
        model(x).sum().backward()
        assert transformer.empty_for(a, (3, 3)) is None
        assert transformer.matmul_into(a, a.T, np.empty((3, 3), np.float32)) is None
    assert x.grad is not None
    assert transformer.empty_for(a, (3, 3)) is not None

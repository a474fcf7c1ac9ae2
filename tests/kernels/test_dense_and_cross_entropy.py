"""The optional numba layer kernels (:mod:`xpnn.kernels.dense`, :mod:`xpnn.kernels.cross_entropy`):
bit for bit the plain equations (NumPy's summation order, its own exp and log), None wherever
they do not apply, and every check of the plain path kept (a bad label raises before any state changes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.errors import LabelError
from xpnn.kernels import compile, cross_entropy, dense

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off


@pytest.fixture
def numba_on(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba", reason="numba is optional (the fast extra); its kernels are not tested")
    monkeypatch.setattr(compile, "enabled", True)


def _same_bits(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    bits = f"u{a.dtype.itemsize}"  # signed zeros and NaNs compared too
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(bits), b.view(bits))


def _plain_loss(z: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
    loss_fn = xpnn.SoftmaxCrossEntropy()
    loss_fn.fused = False
    loss = loss_fn.forward(z, y)
    return loss, loss_fn._ctx.saved[0], loss_fn.backward()


SHAPES = [(1, 1), (1, 10), (7, 3), (8, 9), (32, 10), (129, 8), (256, 10), (300, 129), (1000, 2), (8192, 10)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_softmax_cross_entropy_kernels_give_the_plain_bits(
    shape: tuple[int, int], dtype: str, numba_on: None
) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    z[0, 0] = -0.0
    y = rng.integers(0, shape[1], shape[0])
    loss, probs, grad = _plain_loss(z, y)
    fast = cross_entropy.softmax_cross_entropy(z, y)
    assert fast is not None
    assert _same_bits(fast[0], loss) and fast[0].shape == () and _same_bits(fast[1], probs)
    assert _same_bits(cross_entropy.softmax_cross_entropy_grad(probs, y), grad)
    loss_fn = xpnn.SoftmaxCrossEntropy()  # fused: the kernels, through the public methods
    assert _same_bits(loss_fn.forward(z, y), loss) and _same_bits(loss_fn.backward(), grad)
    assert _same_bits(loss_fn.gradient(probs, y), grad)
    logits = xpnn.Tensor(z, requires_grad=True)  # on the tape: one node, the plain call's options
    recorded = loss_fn(logits, y)
    recorded.backward()
    assert _same_bits(recorded.value, loss) and _same_bits(logits.grad, grad)
    with xpnn.kernels.disabled():
        plain = loss_fn(xpnn.Tensor(z, requires_grad=True), y)
    assert recorded.node.options == plain.node.options and recorded.node.name == plain.node.name


@pytest.mark.parametrize("label", [-1, 10, 2**40])
@pytest.mark.parametrize("validate", [True, False])
def test_a_label_out_of_range_is_never_read_and_raises_before_any_state_changes(
    label: int, validate: bool, numba_on: None
) -> None:
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((16, 10)).astype(np.float32), rng.integers(0, 10, 16)
    y[5] = label
    assert cross_entropy.softmax_cross_entropy(z, y) is None
    assert cross_entropy.softmax_cross_entropy_grad(np.full((16, 10), 0.1, np.float32), y) is None
    loss_fn = xpnn.SoftmaxCrossEntropy()
    if validate:
        with pytest.raises(LabelError, match=r"labels must be in \[0, 10\)"):
            loss_fn.forward(z, y)
        with pytest.raises(LabelError, match=r"labels must be in \[0, 10\)"):
            loss_fn(xpnn.Tensor(z, requires_grad=True), y)
        assert "_ctx" not in vars(loss_fn)


def test_the_loss_kernels_take_only_what_they_cover(numba_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    z, y = np.ones((4, 3), np.float32), np.array([0, 1, 2, 0])
    assert cross_entropy.softmax_cross_entropy(z, y.astype(np.int32)) is None  # the plain path casts
    assert cross_entropy.softmax_cross_entropy(np.asfortranarray(np.ones((4, 3), np.float32)), y) is None
    assert cross_entropy.softmax_cross_entropy(z.astype(np.float16), y) is None
    assert cross_entropy.softmax_cross_entropy(np.ones((0, 3), np.float32), y[:0]) is None
    assert cross_entropy.softmax_cross_entropy(z, y[:3]) is None  # shapes the plain checks refuse
    assert cross_entropy.softmax_cross_entropy(z, y) is not None
    monkeypatch.setattr(compile, "enabled", False)
    assert cross_entropy.softmax_cross_entropy(z, y) is None


def _specials(a: np.ndarray) -> np.ndarray:
    a[0, :6] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45]
    return a


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 7), (5, 2), (33, 17), (256, 350)], ids=str)
def test_bias_relu_and_the_relu_gradient_with_the_bias_sum_give_the_plain_bits(
    shape: tuple[int, int], dtype: str, numba_on: None
) -> None:
    rng = np.random.default_rng(shape[1])
    product = (
        _specials(rng.standard_normal(shape).astype(dtype))
        if shape[1] >= 6
        else rng.standard_normal(shape).astype(dtype)
    )
    bias = rng.standard_normal(shape[1]).astype(dtype)
    bias[:2] = 0.0
    with np.errstate(invalid="ignore"):  # inf - inf: NumPy warns, numba's loop does not
        want = np.maximum(product + bias, 0.0)
        got = dense.bias_relu(product.copy(), bias)
    assert _same_bits(got, want)
    dout = rng.standard_normal(shape).astype(dtype)
    with np.errstate(invalid="ignore"):  # 0 * inf
        dx = np.astype(want > 0, dtype) * dout
    fresh = dout.copy()
    fast = dense.relu_grad_bias(want, fresh, None, in_place=False)
    assert fast is not None and fast[0] is not fresh and _same_bits(fresh, dout)
    assert _same_bits(fast[0], dx) and _same_bits(fast[1], np.add.reduce(dx, axis=0))
    into = np.empty(shape[1], dtype)
    owned = dense.relu_grad_bias(want, fresh, into, in_place=True)
    assert owned is not None and owned[0] is fresh and owned[1] is into and _same_bits(into, fast[1])
    for layout in (product, np.ascontiguousarray(product.T).T):  # ReLU alone, in either layout
        relu = dense.relu(layout)
        assert relu is not None and relu.strides == layout.strides
        assert _same_bits(relu, np.maximum(layout, 0.0))
    alone = dense.relu_grad(want, dout)  # ReLU's own backward: a fresh array, or into dout
    assert alone is not None and alone is not dout and _same_bits(alone, dx)
    written = dout.copy()
    assert dense.relu_grad(want, written, in_place=True) is written and _same_bits(written, dx)
    if shape[0] > 1 and shape[1] > 1:  # layouts that differ: declined, nothing written
        other_layout = np.ascontiguousarray(want.T).T
        assert dense.relu_grad(other_layout, written, in_place=True) is None and _same_bits(written, dx)


def test_the_dense_relu_kernels_take_only_what_they_cover(
    numba_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = np.ones((4, 3), np.float32), np.ones(3, np.float32)
    assert dense.bias_relu(a, b.astype(np.float64)) is None
    assert dense.bias_relu(np.ones((3, 4), np.float32).T, b) is None
    assert dense.relu_grad_bias(a, a[:, :1].copy(), None, True) is None
    assert (
        dense.relu_grad_bias(a[:, :1].copy(), a[:, :1].copy(), None, True) is None
    )  # NumPy sums one column pairwise
    monkeypatch.setattr(compile, "enabled", False)
    assert dense.bias_relu(a, b) is None and dense.relu_grad_bias(a, a, None, True) is None


def _mlp(fused: bool) -> xpnn.Sequential:
    layers = [xpnn.Dense(6, 5), xpnn.ReLU(), xpnn.Dense(5, 4), xpnn.ReLU(), xpnn.Dense(4, 3), xpnn.ReLU()]
    for layer in layers:
        layer.fused = fused
    return xpnn.Sequential(layers, seed=0)


def test_sequential_runs_dense_relu_pairs_in_one_pass_with_the_plain_numbers_and_leaves_inputs_alone(
    numba_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal((9, 6)).astype(np.float32), rng.standard_normal((9, 3)).astype(np.float32)
    x_copy, dout_copy = x.copy(), dout.copy()
    calls: list[str] = []
    for name in ("bias_relu", "relu_grad_bias"):
        real = getattr(dense, name)
        monkeypatch.setattr(dense, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    results = []
    for fused in (True, False):
        model = _mlp(fused)
        out = model.forward(x)
        dx = model.backward(dout, input_grad=True)
        results.append([out, dx] + [p.grad for p in model.parameters()])
    assert calls == ["bias_relu", "bias_relu", "relu_grad_bias", "relu_grad_bias"]  # the trailing ReLU: alone
    for a, b in zip(*results, strict=True):
        assert _same_bits(a, b)
    assert _same_bits(x, x_copy) and _same_bits(dout, dout_copy)  # the caller's arrays: never written


def test_a_layer_whose_forward_is_patched_is_called_not_fused(numba_on: None) -> None:
    model = _mlp(True)
    seen: list[Any] = []
    relu = model.layers[1]
    real = relu.forward
    relu.forward = lambda x: seen.append(x) or real(x)  # type: ignore[method-assign]
    model.backward(model.forward(np.ones((2, 6), np.float32)))
    assert len(seen) == 1

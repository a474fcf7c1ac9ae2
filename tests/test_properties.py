"""Property tests over the public API (hypothesis): random shapes, dtypes and settings give
either a named ``XpnnError`` or finite results equal to a float64 reference, never a raw
exception and never NaN from valid settings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
from tests.helpers import nnfs_book as book
from xpnn import nnfs

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from(["float32", "float64"])
ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3), st.lists(st.integers(0, 3), max_size=2),
)  # fmt: skip
TOLERANCE = {"float32": 2e-4, "float64": 1e-10}


def _array(seed: int, shape: tuple[int, ...], dtype: str, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


@FAST
@given(n_in=st.integers(1, 9), n_out=st.integers(1, 9), batch=st.integers(1, 7), width=st.integers(1, 9),
       dtype=DTYPES, seed=st.integers(0, 2**16))  # fmt: skip
def test_dense_forward_is_the_float64_affine_map_or_a_shape_error(
    n_in: int, n_out: int, batch: int, width: int, dtype: str, seed: int
) -> None:
    layer = xpnn.Dense(n_in, n_out, seed=seed).to("numpy", dtype=dtype)
    layer.bias.value = _array(seed + 1, (n_out,), dtype)
    x = _array(seed, (batch, width), dtype)
    try:
        y = layer.forward(x)
    except xpnn.ShapeError:
        assert width != n_in
        return
    assert width == n_in and y.dtype == np.dtype(dtype)
    w, b = layer.weight.value.astype(np.float64), layer.bias.value.astype(np.float64)
    np.testing.assert_allclose(y, x.astype(np.float64) @ w + b, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


def _log_softmax_reference(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@FAST
@given(batch=st.integers(1, 8), classes=st.integers(1, 6), scale=st.sampled_from([1e-3, 1.0, 30.0, 1e3]),
       dtype=DTYPES, seed=st.integers(0, 2**16), shift=st.integers(-2, 2))  # fmt: skip
def test_softmax_cross_entropy_is_finite_and_exact_or_a_label_error(
    batch: int, classes: int, scale: float, dtype: str, seed: int, shift: int
) -> None:
    logits = _array(seed, (batch, classes), dtype, scale)
    labels = np.random.default_rng(seed).integers(0, classes, batch) + shift
    loss = xpnn.SoftmaxCrossEntropy()
    try:
        value = loss.forward(logits, labels)
    except xpnn.LabelError:
        assert labels.min() < 0 or labels.max() >= classes
        return
    expected = -_log_softmax_reference(logits)[np.arange(batch), labels].mean()
    assert math.isfinite(float(value)) and value.dtype == np.dtype(dtype)
    assert float(value) == np.float64(expected) or abs(float(value) - expected) <= TOLERANCE[dtype] * max(
        1.0, expected
    )
    grad = loss.backward()
    assert np.isfinite(grad).all() and grad.dtype == np.dtype(dtype)


@FAST
@given(batch=st.integers(1, 8), classes=st.integers(2, 5), scale=st.sampled_from([1.0, 20.0, 100.0]),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_the_nnfs_fused_loss_is_the_books_for_any_logits(
    batch: int, classes: int, scale: float, seed: int
) -> None:
    logits = _array(seed, (batch, classes), "float64", scale)
    labels = np.random.default_rng(seed).integers(0, classes, batch)
    ours = nnfs.Activation_Softmax_Loss_CategoricalCrossentropy()
    theirs = book.Activation_Softmax_Loss_CategoricalCrossentropy()
    value, expected = ours.forward(logits, labels), theirs.forward(logits, labels)
    assert math.isfinite(float(value)) and float(value) <= -math.log(1e-7) + 1e-9
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)
    ours.backward(ours.output, labels)
    theirs.backward(theirs.output, labels)
    np.testing.assert_allclose(ours.dinputs, theirs.dinputs, rtol=1e-12, atol=1e-15)


LAYER_BUILDERS = {
    "Dense": lambda a, b: xpnn.Dense(a, b),
    "Dense l2": lambda a, b: xpnn.Dense(2, 2, weight_regularizer_l2=a, init=b),
    "Dropout": lambda a, b: xpnn.Dropout(a, seed=b),
    "LeakyReLU": lambda a, b: xpnn.LeakyReLU(a),
    "Sequential": lambda a, b: xpnn.Sequential([xpnn.Dense(3, 3, seed=a)], seed=b),
}


@FAST
@given(kind=st.sampled_from(sorted(LAYER_BUILDERS)), a=ANYTHING, b=ANYTHING)
def test_any_layer_arguments_build_a_working_layer_or_raise_a_named_error(kind: str, a: Any, b: Any) -> None:
    try:
        layer = LAYER_BUILDERS[kind](a, b)
    except xpnn.XpnnError:
        return
    width = layer.n_in if isinstance(layer, xpnn.Dense) else 3
    out = layer.forward(np.ones((2, width), np.float32))
    assert np.isfinite(out).all()


@FAST
@given(dtype=st.one_of(ANYTHING, st.sampled_from(["float32", "float64", "int32", "float16", "uint8"])))
def test_to_any_dtype_casts_or_raises_a_dtype_error_without_changing_anything(dtype: Any) -> None:
    model = xpnn.Sequential([xpnn.Dense(2, 3)], seed=0)
    before = model.parameters()[0].value.copy()
    try:
        model.to("numpy", dtype=dtype)
    except xpnn.DTypeError:
        assert model.parameters()[0].value.dtype == np.float32
        np.testing.assert_array_equal(model.parameters()[0].value, before)
        return
    assert str(model.parameters()[0].value.dtype) == (dtype or "float32")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(0, 24), epochs=st.integers(-1, 2), batch_size=st.integers(-1, 30),
       split=st.sampled_from([0.0, 0.2, 0.5, 0.99, 1.0, -0.1, math.nan]),
       lr=st.sampled_from([1e-3, 0.1, 1.0]), dtype=DTYPES, seed=st.integers(0, 2**10))  # fmt: skip
def test_fit_trains_to_finite_losses_or_raises_a_named_error(
    rows: int, epochs: int, batch_size: int, split: float, lr: float, dtype: str, seed: int
) -> None:
    model = xpnn.Sequential([xpnn.Dense(3, 4), xpnn.Tanh(), xpnn.Dense(4, 3)], seed=seed).to(
        "numpy", dtype=dtype
    )
    x, y = _array(seed, (rows, 3), dtype), np.random.default_rng(seed).integers(0, 3, rows)
    try:
        optimizer = xpnn.Adam(model.parameters(), lr=lr)
        history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=epochs,
                            batch_size=batch_size, validation_split=split, verbose=0)  # fmt: skip
    except xpnn.XpnnError:
        return
    assert len(history) == epochs and all(math.isfinite(v) for v in history["loss"])
    assert all(p.value.dtype == np.dtype(dtype) for p in model.parameters())

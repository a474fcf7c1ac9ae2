"""Issue 24 (raw errors, item 10): the convolution, pooling and normalization layers name every
bad constructor argument, before anything is allocated, with the built-in base kept."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn

NOT_SIZES = [2.5, None, "3", np.array([1, 1]), True, [3, 3, 3], (3.0, 3)]


WINDOW_ARGUMENTS = {
    "Conv2D kernel_size": lambda v: xpnn.Conv2D(1, 1, v),
    "Conv2D stride": lambda v: xpnn.Conv2D(1, 1, 3, stride=v),
    "Conv2D dilation": lambda v: xpnn.Conv2D(1, 1, 3, dilation=v),
    "MaxPool2D kernel_size": lambda v: xpnn.MaxPool2D(v),
    "AvgPool2D stride": lambda v: xpnn.AvgPool2D(2, stride=v),
    "MaxPool2D padding": lambda v: xpnn.MaxPool2D(3, padding=v),
}
CASES = [
    pytest.param(name, value, id=f"{name}={value!r}")
    for name in WINDOW_ARGUMENTS
    for value in NOT_SIZES
    if not (name == "AvgPool2D stride" and value is None)  # the pooling default: the kernel size
]


@pytest.mark.parametrize(("name", "value"), CASES)
def test_window_sizes_that_are_not_integers_are_argument_type_errors(name: str, value: Any) -> None:
    what = name.split()[1]
    with pytest.raises(
        xpnn.ArgumentTypeError, match=rf"expected {what} an int or a pair \(h, w\) of ints, got"
    ):
        WINDOW_ARGUMENTS[name](value)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: xpnn.Conv2D(1, 1, 0), r"Conv2D\(1 -> 1\): expected kernel_size >= 1 \(each entry\), got 0"),
        (lambda: xpnn.Conv2D(1, 1, (3, -1)), r"expected kernel_size >= 1 \(each entry\), got \(3, -1\)"),
        (lambda: xpnn.Conv2D(1, 1, 3, padding=-1), r"expected padding >= 0"),
        (lambda: xpnn.Conv2D(1, 1, 3, padding="full"), r"padding must be an int, a pair, 'valid' or 'same'"),
        (lambda: xpnn.Conv2D(0, 1, 3), r"Conv2D: expected in_channels >= 1, got 0"),
        (lambda: xpnn.Conv2D(1, 1, 3, seed=-1), r"Conv2D\(1 -> 1\): expected seed >= 0, got -1"),
        (lambda: xpnn.Conv2D(1, 1, 3, init="xavier"), r"Conv2D\(1 -> 1\): unknown init 'xavier'"),
        (lambda: xpnn.MaxPool2D(0), r"MaxPool2D: expected kernel_size >= 1"),
        (lambda: xpnn.BatchNorm(0), r"BatchNorm: expected num_features >= 1, got 0"),
        (lambda: xpnn.BatchNorm(2, eps=float("inf")), r"BatchNorm\(2\): expected eps a finite number"),
        (lambda: xpnn.BatchNorm(2, eps=float("nan")), r"BatchNorm\(2\): expected eps a finite number"),
        (lambda: xpnn.BatchNorm(2, eps=0.0), r"BatchNorm\(2\): expected eps > 0"),
        (
            lambda: xpnn.BatchNorm(2, eps=-1e-5),
            r"BatchNorm\(2\): expected eps a finite number in \[0.0, inf\]",
        ),
        (
            lambda: xpnn.BatchNorm(2, momentum=1.5),
            r"BatchNorm\(2\): expected momentum a finite number in \[0.0, 1.0\]",
        ),
    ],
)
def test_out_of_range_layer_arguments_are_argument_errors(build: Any, match: str) -> None:
    with pytest.raises(xpnn.ArgumentError, match=match):
        build()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: xpnn.BatchNorm(2.5), r"BatchNorm: expected num_features to be an integer, got float 2.5"),
        (lambda: xpnn.BatchNorm("4"), r"BatchNorm: expected num_features to be an integer, got str"),
        (lambda: xpnn.BatchNorm(2, momentum="0.1"), r"expected momentum to be a number"),
        (
            lambda: xpnn.BatchNorm(2, affine="no"),
            r"BatchNorm\(2\): expected affine True or False, got str 'no'",
        ),
        (lambda: xpnn.BatchNorm(2, track_running_stats=1), r"expected track_running_stats True or False"),
        (lambda: xpnn.Conv2D(2.5, 1, 3), r"Conv2D: expected in_channels to be an integer, got float 2.5"),
        (lambda: xpnn.Conv2D(None, 1, 3), r"Conv2D: expected in_channels to be an integer, got NoneType"),
        (lambda: xpnn.Conv2D(np.array([1, 1]), 1, 3), r"expected in_channels to be an integer, got ndarray"),
        (lambda: xpnn.Conv2D(1, 1, 3, bias="no"), r"Conv2D\(1 -> 1\): expected bias True or False"),
        (lambda: xpnn.Conv2D(1, 1, 3, seed=1.0), r"Conv2D\(1 -> 1\): expected seed to be an integer"),
        (lambda: xpnn.MaxPool2D(2, ceil_mode="yes"), r"MaxPool2D: expected ceil_mode True or False"),
        (lambda: xpnn.LayerNorm(4, elementwise_affine="no"), r"expected elementwise_affine True or False"),
        (lambda: xpnn.Dense(2, 2, bias=None), r"Dense: expected bias True or False"),
    ],
)
def test_layer_arguments_of_the_wrong_type_are_argument_type_errors(build: Any, match: str) -> None:
    with pytest.raises(xpnn.ArgumentTypeError, match=match):
        build()


def test_integral_sizes_of_any_integer_type_are_accepted_as_ints() -> None:
    conv = xpnn.Conv2D(np.int64(1), np.uint8(2), np.int64(3), stride=(np.int32(1), 1), padding=np.int64(1))
    pool = xpnn.MaxPool2D(np.int64(3), stride=np.int16(2))
    norm = xpnn.BatchNorm(np.int64(4))
    assert conv.kernel_size == (3, 3) and type(conv.kernel_size[0]) is int and conv.config()["padding"] == 1
    assert pool.config()["kernel_size"] == [3, 3] and type(pool.stride[0]) is int
    assert norm.num_features == 4 and type(norm.num_features) is int
    assert conv.forward(np.ones((1, 1, 4, 4), np.float32)).shape == (1, 2, 4, 4)


def test_a_conv_weight_larger_than_memory_is_a_too_large_error_before_allocating() -> None:
    with pytest.raises(
        xpnn.TooLargeError, match=r"Conv2D\(1 -> 1\): an array of shape \(1, 1, 1000000, 1000000\)"
    ):
        xpnn.Conv2D(1, 1, 10**6)
    with pytest.raises(MemoryError):  # still a MemoryError, and a ValueError (an ArgumentError)
        xpnn.Dense(10**7, 10**7)
    with pytest.raises(ValueError, match=r"Embedding\(10000000000, 8\)"):
        xpnn.Embedding(10**10, 8)


def test_batchnorm_without_statistics_or_affine_holds_no_arrays_as_torch() -> None:
    layer = xpnn.BatchNorm(3, affine=False, track_running_stats=False)
    assert layer.running_mean is None and layer.running_var is None and layer.parameters() == []
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-5, atol=1e-6)
    layer.eval()
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-5, atol=1e-6)  # batch statistics

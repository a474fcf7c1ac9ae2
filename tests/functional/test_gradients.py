"""Every function of ``xpnn.functional``: its hand-written gradient equals central finite
differences in float64 on every backend, and its forward and input / parameter gradients
equal torch.nn.functional's by torch.autograd (rtol 1e-10 in float64, 1e-4 in float32).

Each case is ``(xpnn function, torch function, input shapes)``: both functions take the
differentiable inputs as tensors (labels, targets and conditions are constants inside).
xpnn's ``linear`` weight is (n_in, n_out), the transpose of torch's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest

from tests.helpers.finite_differences import check_finite_differences, check_matches_torch
from tests.helpers.optional import require_torch
from xpnn import Tensor, backend
from xpnn import functional as F

# torch warns that its own "same" padding of an even kernel copies the input: not our concern
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


def tf() -> Any:
    """torch.nn.functional (imported when a torch function runs: skips where torch is absent)."""
    return require_torch().nn.functional


def torch_of(values: Any, dtype: Any = None) -> Any:
    return require_torch().tensor(np.asarray(values), dtype=dtype)


def like(t: Tensor, values: Any) -> Any:
    """A constant host array on ``t``'s backend (labels, targets, conditions)."""
    return backend.from_host(np.asarray(values), backend.resolve(backend.backend_name(t.value)))


LABELS = [2, 0, 3, 3, 1]
IGNORED = [2, -1, 3, -1, 1]  # ignore_index=-1: two rows left out of the loss and of the mean
PROBABILITIES = np.random.default_rng(9).dirichlet(np.ones(4), size=5)


def cross_entropy_case(target: Any, **options: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(xpnn, torch) cross-entropy of logits (5, 4) against the constant labels or probabilities."""
    torch_options = {k: v for k, v in options.items() if v is not None}

    def xpnn_ce(z: Tensor) -> Tensor:
        labels = np.asarray(target)
        return F.cross_entropy(
            z, like(z, labels.astype(backend.dtype_name(z.dtype)) if labels.ndim == 2 else labels), **options
        )

    def torch_ce(z: Any) -> Any:
        labels = np.asarray(target)
        return tf().cross_entropy(z, torch_of(labels, z.dtype if labels.ndim == 2 else None), **torch_options)

    return xpnn_ce, torch_ce


def mse_case(reduction: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    target = np.random.default_rng(3).standard_normal((3, 4))

    def xpnn_mse(p: Tensor) -> Tensor:
        return F.mse(p, like(p, target.astype(backend.dtype_name(p.dtype))), reduction=reduction)

    def torch_mse(p: Any) -> Any:
        return tf().mse_loss(p, torch_of(target, p.dtype), reduction=reduction)

    return xpnn_mse, torch_mse


def where_case() -> tuple[Callable[..., Any], Callable[..., Any]]:
    condition = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, True]])
    return (
        lambda a, b: F.where(like(a, condition), a, b),
        lambda a, b: require_torch().where(torch_of(condition), a, b),
    )


class Case(NamedTuple):
    xpnn: Callable[..., Tensor]
    torch: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...]


X = ((3, 4),)
IMAGE = (2, 2, 5, 6)
CASES: dict[str, Case] = {
    # activations
    "relu": Case(F.relu, lambda x: tf().relu(x), X),
    "leaky_relu_default": Case(F.leaky_relu, lambda x: tf().leaky_relu(x), X),
    "leaky_relu_0.2": Case(lambda x: F.leaky_relu(x, 0.2), lambda x: tf().leaky_relu(x, 0.2), X),
    "leaky_relu_above_1": Case(lambda x: F.leaky_relu(x, 1.5), lambda x: tf().leaky_relu(x, 1.5), X),
    "sigmoid": Case(F.sigmoid, lambda x: tf().sigmoid(x), X),
    "tanh": Case(F.tanh, lambda x: tf().tanh(x), X),
    "softmax_last_axis": Case(F.softmax, lambda x: tf().softmax(x, dim=-1), X),
    "softmax_axis_0": Case(lambda x: F.softmax(x, axis=0), lambda x: tf().softmax(x, dim=0), X),
    "softmax_middle_axis_3d": Case(
        lambda x: F.softmax(x, axis=1), lambda x: tf().softmax(x, dim=1), ((2, 3, 2),)
    ),
    "log_softmax_last_axis": Case(F.log_softmax, lambda x: tf().log_softmax(x, dim=-1), X),
    "log_softmax_axis_0": Case(lambda x: F.log_softmax(x, axis=0), lambda x: tf().log_softmax(x, dim=0), X),
    "log_softmax_middle_axis_3d": Case(
        lambda x: F.log_softmax(x, axis=1), lambda x: tf().log_softmax(x, dim=1), ((2, 3, 2),)
    ),
    # linear: xpnn's w is torch's weight transposed
    "linear": Case(F.linear, lambda x, w, b: tf().linear(x, w.T, b), ((2, 3), (3, 4), (4,))),
    "linear_no_bias": Case(F.linear, lambda x, w: tf().linear(x, w.T), ((2, 3), (3, 4))),
    "linear_batched_3d": Case(F.linear, lambda x, w, b: tf().linear(x, w.T, b), ((2, 2, 3), (3, 2), (2,))),
    # conv2d
    "conv2d": Case(F.conv2d, lambda x, w, b: tf().conv2d(x, w, b), (IMAGE, (2, 2, 3, 3), (2,))),
    "conv2d_stride2_pad1": Case(
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        lambda x, w, b: tf().conv2d(x, w, b, stride=2, padding=1),
        (IMAGE, (3, 2, 3, 3), (3,)),
    ),
    "conv2d_rectangular_stride_and_padding": Case(
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0)),
        lambda x, w, b: tf().conv2d(x, w, b, stride=(2, 1), padding=(1, 0)),
        (IMAGE, (2, 2, 3, 2), (2,)),
    ),
    "conv2d_same_even_kernel": Case(
        lambda x, w, b: F.conv2d(x, w, b, padding="same"),
        lambda x, w, b: tf().conv2d(x, w, b, padding="same"),
        (IMAGE, (2, 2, 2, 4), (2,)),
    ),
    "conv2d_dilation2": Case(
        lambda x, w, b: F.conv2d(x, w, b, dilation=2, padding=1),
        lambda x, w, b: tf().conv2d(x, w, b, dilation=2, padding=1),
        (IMAGE, (2, 2, 2, 2), (2,)),
    ),
    "conv2d_dilation_same": Case(
        lambda x, w: F.conv2d(x, w, dilation=(2, 1), padding="same"),
        lambda x, w: tf().conv2d(x, w, dilation=(2, 1), padding="same"),
        (IMAGE, (2, 2, 3, 3)),
    ),
    "conv2d_groups2": Case(
        lambda x, w, b: F.conv2d(x, w, b, groups=2, stride=2),
        lambda x, w, b: tf().conv2d(x, w, b, groups=2, stride=2),
        ((2, 4, 5, 5), (4, 2, 3, 3), (4,)),
    ),
    "conv2d_depthwise_no_bias": Case(
        lambda x, w: F.conv2d(x, w, groups=2, padding=1),
        lambda x, w: tf().conv2d(x, w, groups=2, padding=1),
        (IMAGE, (2, 1, 3, 3)),
    ),
    # pooling
    "max_pool2d": Case(lambda x: F.max_pool2d(x, 2), lambda x: tf().max_pool2d(x, 2), (IMAGE,)),
    "max_pool2d_k3_s2_pad1": Case(
        lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: tf().max_pool2d(x, 3, 2, 1), (IMAGE,)
    ),
    "max_pool2d_ceil_mode": Case(
        lambda x: F.max_pool2d(x, 2, ceil_mode=True),
        lambda x: tf().max_pool2d(x, 2, ceil_mode=True),
        ((1, 2, 5, 5),),
    ),
    "max_pool2d_ceil_mode_padded": Case(
        lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
        lambda x: tf().max_pool2d(x, 3, 2, 1, ceil_mode=True),
        ((1, 2, 6, 6),),
    ),
    "max_pool2d_rectangular": Case(
        lambda x: F.max_pool2d(x, (2, 3), (1, 2)), lambda x: tf().max_pool2d(x, (2, 3), (1, 2)), (IMAGE,)
    ),
    "avg_pool2d": Case(lambda x: F.avg_pool2d(x, 2), lambda x: tf().avg_pool2d(x, 2), (IMAGE,)),
    "avg_pool2d_k3_s2_pad1": Case(
        lambda x: F.avg_pool2d(x, 3, 2, 1), lambda x: tf().avg_pool2d(x, 3, 2, 1), (IMAGE,)
    ),
    "avg_pool2d_ceil_mode": Case(
        lambda x: F.avg_pool2d(x, 2, ceil_mode=True),
        lambda x: tf().avg_pool2d(x, 2, ceil_mode=True),
        ((1, 2, 5, 5),),
    ),
    "avg_pool2d_ceil_mode_padded": Case(
        lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
        lambda x: tf().avg_pool2d(x, 3, 2, 1, ceil_mode=True),
        ((1, 2, 6, 6),),
    ),
    "global_avg_pool2d": Case(F.global_avg_pool2d, lambda x: x.mean(dim=(2, 3)), (IMAGE,)),
    # batch_norm without running statistics: batch statistics in training and in eval (torch's)
    "batch_norm_2d_input": Case(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: tf().batch_norm(x, None, None, w, b, training=True),
        ((4, 3), (3,), (3,)),
    ),
    "batch_norm_images": Case(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3),
        lambda x, w, b: tf().batch_norm(x, None, None, w, b, training=True, eps=1e-3),
        ((2, 3, 2, 3), (3,), (3,)),
    ),
    "batch_norm_no_affine": Case(
        lambda x: F.batch_norm(x, None, None, training=True),
        lambda x: tf().batch_norm(x, None, None, training=True),
        ((2, 3, 2, 2),),
    ),
    # losses
    "cross_entropy_mean": Case(*cross_entropy_case(LABELS), ((5, 4),)),
    "cross_entropy_sum": Case(*cross_entropy_case(LABELS, reduction="sum"), ((5, 4),)),
    "cross_entropy_none": Case(*cross_entropy_case(LABELS, reduction="none"), ((5, 4),)),
    "cross_entropy_label_smoothing": Case(*cross_entropy_case(LABELS, label_smoothing=0.2), ((5, 4),)),
    "cross_entropy_smoothing_sum": Case(
        *cross_entropy_case(LABELS, label_smoothing=0.1, reduction="sum"), ((5, 4),)
    ),
    "cross_entropy_ignore_index": Case(*cross_entropy_case(IGNORED, ignore_index=-1), ((5, 4),)),
    "cross_entropy_ignore_index_sum": Case(
        *cross_entropy_case(IGNORED, ignore_index=-1, reduction="sum"), ((5, 4),)
    ),
    "cross_entropy_ignore_index_none": Case(
        *cross_entropy_case(IGNORED, ignore_index=-1, reduction="none"), ((5, 4),)
    ),
    "cross_entropy_ignore_index_smoothing": Case(
        *cross_entropy_case(IGNORED, ignore_index=-1, label_smoothing=0.3), ((5, 4),)
    ),
    "cross_entropy_probabilities": Case(*cross_entropy_case(PROBABILITIES), ((5, 4),)),
    "cross_entropy_probabilities_smoothing_none": Case(
        *cross_entropy_case(PROBABILITIES, label_smoothing=0.1, reduction="none"), ((5, 4),)
    ),
    "mse_mean": Case(*mse_case("mean"), ((3, 4),)),
    "mse_sum": Case(*mse_case("sum"), ((3, 4),)),
    "mse_none": Case(*mse_case("none"), ((3, 4),)),
    # joining and choosing
    "concat": Case(
        lambda a, b: F.concat([a, b], axis=1),
        lambda a, b: require_torch().cat([a, b], dim=1),
        ((3, 2), (3, 4)),
    ),
    "stack": Case(
        lambda a, b: F.stack([a, b], axis=-1),
        lambda a, b: require_torch().stack([a, b], dim=-1),
        ((3, 4), (3, 4)),
    ),
    "where": Case(*where_case(), ((3, 4), (3, 4))),
    "maximum": Case(F.maximum, lambda a, b: require_torch().maximum(a, b), ((3, 4), (4,))),
    "minimum": Case(F.minimum, lambda a, b: require_torch().minimum(a, b), ((3, 1), (3, 4))),
}


def inputs(case: str, dtype: str = "float64") -> list[np.ndarray]:
    rng = np.random.default_rng(sorted(CASES).index(case))
    return [rng.standard_normal(shape).astype(dtype) for shape in CASES[case].shapes]


@pytest.mark.parametrize("case", sorted(CASES))
def test_function_gradient_matches_finite_differences(case, bk):
    check_finite_differences(bk, CASES[case].xpnn, *inputs(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_function_forward_and_gradients_equal_torch_in_float64(case, bk):
    check_matches_torch(bk, CASES[case].xpnn, CASES[case].torch, *inputs(case), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case", sorted(CASES))
def test_function_forward_and_gradients_equal_torch_in_float32(case, bk):
    check_matches_torch(
        bk, CASES[case].xpnn, CASES[case].torch, *inputs(case, "float32"), rtol=1e-4, atol=1e-6
    )

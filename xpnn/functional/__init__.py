"""The differentiable functions, on Tensors (or arrays, taken as constants): ``from xpnn import
functional as F``. Each returns a Tensor and records one node whose backward is written by
hand beside its forward (:mod:`xpnn.functional.linear`, ``activations``, ``conv``, ``pooling``,
``normalization``, ``dropout``, ``losses``; the transformer's: ``transformer``); the layers
of :mod:`xpnn.nn` call the same ones.
Inputs are checked first (shapes, dtypes, namespaces), naming the function and the culprit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xpnn.autograd.tensor import Tensor, apply, constant
from xpnn.backend import namespace
from xpnn.checks import (
    check_axis,
    check_choice,
    check_floating_input,
    check_labels,
    check_rank_at_least,
    check_shape,
)
from xpnn.errors import ShapeError
from xpnn.functional import windows
from xpnn.functional.activations import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from xpnn.functional.conv import Conv2d
from xpnn.functional.dropout import Dropout
from xpnn.functional.linear import Linear
from xpnn.functional.losses import CrossEntropy, MeanSquaredError
from xpnn.functional.normalization import BatchNorm, Running
from xpnn.functional.pooling import AvgPool2d, GlobalAvgPool2d, MaxPool2d, check_pixels
from xpnn.functional.transformer import embedding, gelu, layer_norm, scaled_dot_product_attention

Array = Any
TensorLike = Tensor | Array
REDUCTIONS = ("mean", "sum", "none")


def _value(x: TensorLike) -> Array:
    return x.value if isinstance(x, Tensor) else x


# -- activations ------------------------------------------------------------------------------------
def relu(x: TensorLike) -> Tensor:
    """``max(x, 0)``; the gradient is 1 where ``x > 0`` and 0 elsewhere (0 at the kink)."""
    check_floating_input("relu", _value(x))
    return ReLU.apply(x)


def leaky_relu(x: TensorLike, alpha: float = 0.01) -> Tensor:
    """``x`` where ``x > 0``, else ``alpha * x``."""
    check_floating_input("leaky_relu", _value(x))
    return LeakyReLU.apply(x, alpha=float(alpha))


def sigmoid(x: TensorLike) -> Tensor:
    """``1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2``: no overflow for any x."""
    check_floating_input("sigmoid", _value(x))
    return Sigmoid.apply(x)


def tanh(x: TensorLike) -> Tensor:
    """``tanh(x)``; ``dy/dx = 1 - y**2``."""
    check_floating_input("tanh", _value(x))
    return Tanh.apply(x)


def softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``: stable for any logits."""
    check_floating_input("softmax", _value(x))
    return Softmax.apply(x, axis=check_axis("softmax", _value(x), axis))


def log_softmax(x: TensorLike, axis: int = -1) -> Tensor:
    """``x - max - log(sum(exp(x - max)))`` along ``axis``: the log-probabilities, stably."""
    check_floating_input("log_softmax", _value(x))
    return LogSoftmax.apply(x, axis=check_axis("log_softmax", _value(x), axis))


# -- layers' functions ------------------------------------------------------------------------------
def linear(x: TensorLike, w: TensorLike, b: TensorLike | None = None) -> Tensor:
    """``x @ w + b`` over the last axis: ``(..., n_in) -> (..., n_out)``, ``w`` (n_in, n_out)
    as :class:`~xpnn.Dense` (the transpose of torch's Linear weight), ``b`` (n_out,) or None."""
    xv, wv = _value(x), _value(w)
    check_floating_input("linear", xv)
    check_shape("linear", "w", wv, 2, "(n_in, n_out)")
    check_rank_at_least("linear", "x", xv, 1, f"(..., {wv.shape[0]})")
    if xv.shape[-1] != wv.shape[0]:
        raise_shape("linear", f"x of shape (..., {wv.shape[0]}) for w of shape {tuple(wv.shape)}", xv)
    if b is not None and tuple(_value(b).shape) != (wv.shape[1],):
        raise_shape("linear", f"b of shape ({wv.shape[1]},)", _value(b))
    return Linear.apply(x, w, b)


def conv2d(
    x: TensorLike,
    w: TensorLike,
    b: TensorLike | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution of NCHW ``x`` with ``w`` (C_out, C_in/groups, kh, kw), as torch's."""
    xv, wv = _value(x), _value(w)
    check_floating_input("conv2d", xv)
    check_shape("conv2d", "x", xv, 4, "(batch, channels, height, width)")
    check_shape("conv2d", "w", wv, 4, "(out_channels, in_channels / groups, kh, kw)")
    if xv.shape[1] != wv.shape[1] * groups or wv.shape[0] % groups:
        raise_shape("conv2d", f"x with {wv.shape[1] * groups} channels for w of shape {tuple(wv.shape)} "
                    f"and groups={groups}", xv)  # fmt: skip
    kernel = (int(wv.shape[2]), int(wv.shape[3]))
    stride_, dilation_ = (
        windows.pair(stride, "conv2d", "stride"),
        windows.pair(dilation, "conv2d", "dilation"),
    )
    pads = windows.padding("conv2d", padding, kernel, stride_, dilation_)
    geo = windows.geometry("conv2d", tuple(xv.shape), kernel, stride_, dilation_, pads)
    return Conv2d.apply(x, w, b, geometry=geo, groups=int(groups))


def _pool_geometry(who: str, x: Array, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool) -> Any:
    check_floating_input(who, x)
    check_shape(who, "x", x, 4, "(batch, channels, height, width)")
    kernel = windows.pair(kernel_size, who, "kernel_size")
    step = kernel if stride is None else windows.pair(stride, who, "stride")
    ph, pw = windows.pair(padding, who, "padding", minimum=0)
    windows.check_pool_padding(who, (ph, pw), kernel)
    return windows.geometry(who, tuple(x.shape), kernel, step, (1, 1), (ph, ph, pw, pw), ceil_mode), (ph, pw)


def max_pool2d(x: TensorLike, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False) -> Tensor:  # fmt: skip
    """The window maximum (padding -inf); the gradient goes to each window's first maximum."""
    geo, _ = _pool_geometry("max_pool2d", _value(x), kernel_size, stride, padding, ceil_mode)
    return MaxPool2d.apply(x, geometry=geo)


def avg_pool2d(x: TensorLike, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False) -> Tensor:  # fmt: skip
    """The window mean (zero padding counted, as torch's default)."""
    geo, pads = _pool_geometry("avg_pool2d", _value(x), kernel_size, stride, padding, ceil_mode)
    return AvgPool2d.apply(x, geometry=geo, padding=pads)


def global_avg_pool2d(x: TensorLike) -> Tensor:
    """``(N, C, H, W) -> (N, C)``: the mean over each channel's pixels."""
    check_floating_input("global_avg_pool2d", _value(x))
    check_shape("global_avg_pool2d", "x", _value(x), 4, "(batch, channels, height, width)")
    check_pixels("global_avg_pool2d", _value(x))
    return GlobalAvgPool2d.apply(x)


def batch_norm(
    x: TensorLike,
    running_mean: Array | None,
    running_var: Array | None,
    weight: TensorLike | None = None,
    bias: TensorLike | None = None,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """torch's ``batch_norm``: normalize axis 1 of (N, C) or (N, C, H, W) over the rest; in
    training with batch statistics (updating the running ones in place where the arrays are
    writeable), else with the running statistics."""
    xv = _value(x)
    check_floating_input("batch_norm", xv)
    if xv.ndim not in (2, 4):
        raise_shape("batch_norm", "x of shape (batch, channels) or (batch, channels, height, width)", xv)
    running = None
    if running_mean is not None and running_var is not None:
        running = Running(_value(running_mean), _value(running_var), float(momentum))
    out = BatchNorm.apply(x, weight, bias, training=bool(training), running=running, eps=float(eps))
    return out


def dropout(x: TensorLike, rate: float, *, training: bool = True, key: Sequence[int]) -> Tensor:
    """Inverted dropout with the mask drawn from the integer tuple ``key`` (reproducible)."""
    check_floating_input("dropout", _value(x))
    if not training or rate == 0.0:
        return constant(x) if not isinstance(x, Tensor) else x
    return Dropout.apply(x, rate=float(rate), key=tuple(int(k) for k in key))


# -- losses -----------------------------------------------------------------------------------------
def cross_entropy(
    logits: TensorLike,
    labels: TensorLike,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
) -> Tensor:
    """Softmax cross-entropy of logits (N, C) with integer labels (N,) or probabilities (N, C),
    as torch's ``cross_entropy`` (``reduction``, ``label_smoothing``, ``ignore_index``)."""
    check_choice("cross_entropy", "reduction", reduction, REDUCTIONS)
    zv, target = _value(logits), _value(labels)
    is_labels = check_labels("cross_entropy", zv, target, ignore_index)
    return CrossEntropy.apply(logits, target, labels=is_labels, reduction=reduction,
                              label_smoothing=float(label_smoothing), ignore_index=ignore_index)  # fmt: skip


def mse(pred: TensorLike, target: TensorLike, *, reduction: str = "mean") -> Tensor:
    """Squared error ``(pred - target)**2``, reduced by ``reduction``."""
    check_choice("mse", "reduction", reduction, REDUCTIONS)
    pv, tv = _value(pred), _value(target)
    check_floating_input("mse", pv)
    if tuple(tv.shape) != tuple(pv.shape):
        raise_shape("mse", f"target of shape {tuple(pv.shape)} (the prediction's)", tv)
    return MeanSquaredError.apply(
        pred, tv if tv.dtype == pv.dtype else _cast_like(tv, pv), reduction=reduction
    )


def _cast_like(x: Array, like: Array) -> Array:
    return namespace(like).astype(x, like.dtype)


# -- joining and choosing (the recording namespace's, as functions) -------------------------------
def concat(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Tensors joined along an existing axis; each gets its slice of the gradient."""
    items = [constant(t) for t in tensors]
    return apply("concat", *items, axis=axis)


def stack(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Tensors of one shape stacked along a new axis."""
    items = [constant(t) for t in tensors]
    return apply("stack", *items, axis=axis)


def where(condition: Array, a: TensorLike, b: TensorLike) -> Tensor:
    """``a`` where ``condition`` holds, else ``b``; each gets the gradient where it was chosen."""
    return apply("where", *_tensor_first(a, b), condition=_value(condition))


def maximum(a: TensorLike, b: TensorLike) -> Tensor:
    """The elementwise maximum; at a tie each side gets half the gradient (torch's rule)."""
    return apply("maximum", *_tensor_first(a, b))


def minimum(a: TensorLike, b: TensorLike) -> Tensor:
    """The elementwise minimum; at a tie each side gets half the gradient."""
    return apply("minimum", *_tensor_first(a, b))


def _tensor_first(a: Any, b: Any) -> tuple[Any, Any]:
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return constant(a), b
    return a, b


def raise_shape(who: str, expected: str, got: Array) -> None:
    raise ShapeError(f"{who}: expected {expected}, got shape {tuple(got.shape)}")


__all__ = [
    "avg_pool2d",
    "batch_norm",
    "concat",
    "conv2d",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "global_avg_pool2d",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "maximum",
    "minimum",
    "mse",
    "relu",
    "scaled_dot_product_attention",
    "sigmoid",
    "softmax",
    "stack",
    "tanh",
    "where",
]

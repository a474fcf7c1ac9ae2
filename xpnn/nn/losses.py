"""Losses: ``forward(pred, target) -> 0-d array`` (the batch mean), ``backward() -> dL/dpred``.

The loss stays an array on the device: no host synchronisation per step unless asked.
``validate=True`` (the default for a direct call) checks label values, one host sync;
training loops validate all labels once up front and pass ``validate=False``.
``check_finite=True`` raises :class:`NonFiniteLossError` on a NaN or infinite loss.
"""

from __future__ import annotations

import math
from typing import Any

from xpnn.backend import backend_name, device_of, namespace, numba_layers, numpy_fast
from xpnn.errors import BackendMismatchError, ForwardFirstError, LabelError, NonFiniteLossError, ShapeError
from xpnn.nn.activations import row_max, row_sum
from xpnn.nn.checks import check_array, check_floating, is_integral

Array = Any

_CLIP = 1e-7  # the NNFS book's clip for probabilities before a log


class Loss:
    """Base class; a subclass implements ``_forward`` and ``_backward`` on checked inputs."""

    takes_labels = False  # True: integer class labels are accepted as targets
    classifies = True  # False for regression losses: fit reports no accuracy for them

    def __init__(self, *, validate: bool = True, check_finite: bool = False) -> None:
        self.validate = validate
        self.check_finite = check_finite

    def forward(self, pred: Array, target: Array, *, validate: bool | None = None) -> Array:
        """The mean loss over the batch, as a 0-d array on ``pred``'s device."""
        loss = self._fast_forward(pred, target)
        if loss is None:
            xp, pred, target, labels = self._prepare(pred, target, validate)
            self.pred, self.target, self.labels = pred, target, labels
            loss = xp.asarray(self._forward(xp, pred, target, labels))
        if self.check_finite and not bool(namespace(loss).isfinite(loss)):
            raise NonFiniteLossError(f"{type(self).__name__}: the loss is {float(loss)} (not finite)")
        return loss

    __call__ = forward

    def _prepare(self, pred: Array, target: Array, validate: bool | None) -> tuple[Any, Array, Array, bool]:
        """Check ``pred`` and ``target``; ``(xp, pred, target, labels)`` with the target cast
        to int64 labels or to the predictions' dtype. Changes no state."""
        name = type(self).__name__
        check_array(name, pred, "predictions")
        check_array(name, target, "targets")
        check_floating(name, pred, "predictions")
        if type(target) is not type(pred) or device_of(target) != device_of(pred):
            raise BackendMismatchError(
                f"{name}: targets ({backend_name(target)}, device {device_of(target)}) must be on the "
                f"predictions' backend and device ({backend_name(pred)}, {device_of(pred)})"
            )
        xp = namespace(pred)
        labels = self.takes_labels and is_integral(target)
        self._check_shapes(pred, target, labels)
        if labels and (self.validate if validate is None else validate):
            self._check_label_values(xp, pred, target)
        if not labels and target.dtype != pred.dtype:
            target = xp.astype(target, pred.dtype)
        elif labels and target.dtype != xp.int64:  # torch indexes with int64 only
            target = xp.astype(target, xp.int64)
        return xp, pred, target, labels

    def _fast_forward(self, pred: Array, target: Array) -> Array | None:
        """The loss by a one-pass kernel, with the state ``backward`` needs set, where one applies
        (inputs it takes pass every check of ``_prepare``, labels included); else None."""
        return None

    def backward(self) -> Array:
        """dL/dpred for the last ``forward`` (the gradient of the batch mean)."""
        if getattr(self, "pred", None) is None:
            raise ForwardFirstError(f"{type(self).__name__}.backward: called before forward")
        return self._backward(namespace(self.pred), self.pred, self.target, self.labels)

    def _check_shapes(self, pred: Array, target: Array, labels: bool) -> None:
        name = type(self).__name__
        if labels:
            if pred.ndim != 2 or target.ndim != 1 or target.shape[0] != pred.shape[0]:
                raise LabelError(
                    f"{name}: expected predictions (batch, classes) and labels (batch,), "
                    f"got {tuple(pred.shape)} and {tuple(target.shape)}"
                )
        elif tuple(target.shape) != tuple(pred.shape):
            expected = "or integer labels (batch,) " if self.takes_labels else ""
            raise ShapeError(
                f"{name}: expected targets of shape {tuple(pred.shape)} {expected}"
                f"(dtype {target.dtype}), got {tuple(target.shape)}"
            )

    def _check_label_values(self, xp: Any, pred: Array, target: Array) -> None:
        classes = pred.shape[1]
        if bool(xp.any((target < 0) | (target >= classes))):
            raise LabelError(
                f"{type(self).__name__}: labels must be in [0, {classes}), got values in "
                f"[{int(xp.min(target))}, {int(xp.max(target))}]"
            )

    def _forward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        raise NotImplementedError

    def _backward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        raise NotImplementedError


def _label_mask(xp: Any, pred: Array, labels: Array) -> Array:
    """Boolean (batch, classes) mask, True at each row's label (no float one-hot matrix)."""
    return labels[:, None] == xp.arange(pred.shape[1], device=device_of(pred))


def _take_at_labels(xp: Any, x: Array, labels: Array, fused: bool) -> Array:
    """``x[i, labels[i]]`` per row, shape (rows, 1); with ``fused``, NumPy's integer indexing."""
    out = numpy_fast.take_at_labels(x, labels) if fused else None
    return xp.take_along_axis(x, labels[:, None], axis=1) if out is None else out


def _clip(xp: Any, p: Array) -> Array:
    """``p`` clipped to the book's [1e-7, 1 - 1e-7] by ``minimum``/``maximum``: array-api-compat's
    generic ``clip`` assigns through a boolean mask, a host sync on CuPy."""
    return xp.minimum(xp.maximum(p, _CLIP), 1.0 - _CLIP)


class SoftmaxCrossEntropy(Loss):
    """Softmax and cross-entropy fused: takes logits, integer labels or (soft) one-hot targets.

    ``L = mean_i(logsumexp(z_i) - z_i[y_i])``, stable for any logits; the backward is the
    cheap ``(softmax(z) - onehot(y)) / N``. ``fused`` (on by default): NumPy's ufunc reduces,
    integer-array label pick, and the one-hot subtracted in place (:mod:`xpnn.backend.numpy_fast`);
    where numba is installed, NumPy logits with int64 labels take three loops and one pass
    instead (:mod:`xpnn.backend.numba_layers`, the same bits, the label range checked there).
    """

    takes_labels = True
    fused: bool = True

    def _fast_forward(self, pred: Array, target: Array) -> Array | None:
        """With ``fused``, numba's passes for NumPy logits and int64 labels in range (any other
        input, a bad label included, takes the checked plain path)."""
        fast = numba_layers.softmax_cross_entropy(pred, target) if self.fused else None
        if fast is None:
            return None
        loss, self.probs = fast
        self.pred, self.target, self.labels = pred, target, True
        return loss

    def _forward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        shifted = pred - row_max(pred, self.fused)
        exp = xp.exp(shifted)
        total = row_sum(exp, self.fused)
        self.probs = exp / total
        log_total = xp.log(total)
        if labels:
            picked = _take_at_labels(xp, shifted, target, self.fused)
            return xp.sum(log_total - picked) / pred.shape[0]  # the mean (np.mean's own sum / n)
        return xp.mean(xp.sum(target * (log_total - shifted), axis=1))

    def _backward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        return _softmax_gradient(xp, self.probs, target, labels, self.fused)

    def gradient(self, probs: Array, target: Array, *, validate: bool | None = None) -> Array:
        """dL/dlogits ``(probs - onehot(target)) / N`` from given softmax probabilities (the NNFS
        book's fused backward takes them as its input); checks ``target`` as ``forward`` does
        and changes no state."""
        xp, probs, target, labels = self._prepare(probs, target, validate)
        return _softmax_gradient(xp, probs, target, labels, self.fused)


def _softmax_gradient(xp: Any, probs: Array, target: Array, labels: bool, fused: bool) -> Array:
    scale = 1.0 / probs.shape[0]
    fast = numba_layers.softmax_cross_entropy_grad(probs, target) if fused and labels else None
    if fast is not None:
        return fast
    if labels:  # (p - onehot) / N, no one-hot
        scaled = probs * scale
        out = numpy_fast.add_at_labels(scaled, target, -scale) if fused else None
        return xp.where(_label_mask(xp, probs, target), scaled - scale, scaled) if out is None else out
    return (probs * xp.sum(target, axis=1, keepdims=True) - target) * scale


class CategoricalCrossEntropy(Loss):
    """Cross-entropy of probabilities (e.g. a Softmax output), clipped to [1e-7, 1 - 1e-7]
    as the NNFS book does: ``L = mean_i(-log p_i[y_i])``. ``fused``: the label pick by NumPy's
    integer indexing."""

    takes_labels = True
    fused: bool = True

    def _forward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        return xp.mean(_sample_losses(xp, pred, target, labels, self.fused))

    def sample_losses(self, pred: Array, target: Array, *, validate: bool | None = None) -> Array:
        """The per-sample losses ``-log p_i[y_i]`` (the NNFS book's ``forward``), shape (batch,);
        sets the state ``backward`` uses, as ``forward`` does."""
        xp, pred, target, labels = self._prepare(pred, target, validate)
        self.pred, self.target, self.labels = pred, target, labels
        return _sample_losses(xp, pred, target, labels, self.fused)

    def _backward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        scale = -1.0 / pred.shape[0]
        if labels:
            return xp.where(_label_mask(xp, pred, target), scale / pred, 0.0)
        return target / pred * scale


def _sample_losses(xp: Any, pred: Array, target: Array, labels: bool, fused: bool) -> Array:
    clipped = _clip(xp, pred)
    if labels:
        confidence = _take_at_labels(xp, clipped, target, fused)[:, 0]
    else:
        confidence = xp.sum(clipped * target, axis=1)
    return -xp.log(confidence)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy of probabilities (e.g. a Sigmoid output), clipped as the book does:
    ``L = mean(-(t * log p + (1 - t) * log(1 - p)))`` over every output."""

    def _forward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        p = _clip(xp, pred)
        return xp.mean(-(target * xp.log(p) + (1.0 - target) * xp.log(1.0 - p)))

    def _backward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        p = _clip(xp, pred)
        size = 1.0 / math.prod(pred.shape)
        return -(target / p - (1.0 - target) / (1.0 - p)) * size


class MSE(Loss):
    """Mean squared error ``L = mean((p - t)**2)`` over every output."""

    classifies = False

    def _forward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        diff = pred - target
        return xp.mean(diff * diff)

    def _backward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        return (pred - target) * (2.0 / math.prod(pred.shape))


class MAE(Loss):
    """Mean absolute error ``L = mean(|p - t|)`` over every output."""

    classifies = False

    def _forward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        return xp.mean(xp.abs(pred - target))

    def _backward(self, xp: Any, pred: Array, target: Array, labels: bool) -> Array:
        diff = pred - target  # sign(diff) without ``sign``, which on torch assigns NaNs through a mask
        sign = xp.astype(diff > 0, diff.dtype) - xp.astype(diff < 0, diff.dtype)
        return sign * (1.0 / math.prod(pred.shape))

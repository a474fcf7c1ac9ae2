"""Losses as differentiable functions of predictions (and a constant target), each backward
beside its forward. The loss is a 0-d array (``reduction="none"``: one per sample).

``cross_entropy`` takes logits: ``L_i = logsumexp(z_i) - z_i[y_i]``, stable for any logits,
with torch's ``label_smoothing`` (the target ``(1 - e) onehot + e / C``), ``ignore_index``
(rows left out of the loss and of the mean's count) and soft (probability) targets; its
backward is ``(softmax(z) - target) / N``. On NumPy with int64 labels and the defaults, numba
loops compute it (:mod:`xpnn.kernels.cross_entropy`, the same bits as the plain path).
``categorical_cross_entropy`` takes probabilities, clipped to [1e-7, 1 - 1e-7] as the NNFS
book does; ``binary_cross_entropy`` likewise; ``mse`` and ``mae`` over every element.
"""

from __future__ import annotations

import math
from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import device_of, namespace
from xpnn.functional.activations import _reduce_max, _reduce_sum
from xpnn.kernels import cross_entropy as loss_kernels

Array = Any
CLIP = 1e-7  # the NNFS book's clip for probabilities before a log


def label_mask(xp: Any, pred: Array, labels: Array) -> Array:
    """Boolean (batch, classes) mask, True at each row's label (no float one-hot matrix)."""
    return labels[:, None] == xp.arange(pred.shape[1], device=device_of(pred))


def take_at_labels(xp: Any, x: Array, labels: Array, fused: bool) -> Array:
    """``x[i, labels[i]]`` per row, shape (rows, 1); with ``fused``, NumPy's integer indexing."""
    out = loss_kernels.take_at_labels(x, labels) if fused else None
    return xp.take_along_axis(x, labels[:, None], axis=1) if out is None else out


def clip_probabilities(xp: Any, p: Array) -> Array:
    """``p`` clipped to the book's [1e-7, 1 - 1e-7] by ``minimum``/``maximum``: array-api-compat's
    generic ``clip`` assigns through a boolean mask, a host sync on CuPy."""
    return xp.minimum(xp.maximum(p, CLIP), 1.0 - CLIP)


def _times(g: Any, grad: Array) -> Array:
    """``g * grad``; ``grad`` itself for the plain-array ``Loss.backward``'s seed 1.0 (the same
    numbers, one pass over the gradient fewer)."""
    return grad if type(g) is float and g == 1.0 else g * grad


def _scaled(xp: Any, per_sample: Array, reduction: str, count: Any) -> Array:
    if reduction == "none":
        return per_sample
    total = xp.sum(per_sample)
    return total if reduction == "sum" else total / count


class CrossEntropy(Function):
    """Softmax and cross-entropy in one, on logits (N, C) and labels (N,) or targets (N, C)."""

    name = "cross_entropy"

    @staticmethod
    def forward(
        ctx: Node,
        logits: Array,
        target: Array,
        *,
        labels: bool,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        fused: bool = True,
    ) -> Array:
        plain = reduction == "mean" and not label_smoothing and ignore_index is None
        loss = CrossEntropy.fused_mean(ctx, logits, target) if fused and labels and plain else None
        if loss is not None:
            return loss
        xp = namespace(logits)
        shifted = logits - _reduce_max(logits, -1, fused)
        exp = xp.exp(shifted)
        total = _reduce_sum(exp, -1, fused)
        probs = exp / total
        log_total = xp.log(total)
        weights = None
        if labels and ignore_index is not None:
            keep = target != ignore_index
            weights = xp.astype(keep, logits.dtype)
            target = xp.where(keep, target, xp.zeros_like(target))  # any class: its weight is 0
        if plain and labels:  # the mean as np.mean's own sum / n: the fused loops' bits
            picked = take_at_labels(xp, shifted, target, fused)
            loss = xp.sum(log_total - picked) / logits.shape[0]
        else:
            dist = _target_distribution(xp, logits, target, labels, label_smoothing)
            # the logits' side first: array-api-strict's operators refuse a Tensor on their right,
            # so these equations record on Tensors (each path checks the other) only in this order
            per_sample = xp.sum((log_total - shifted) * dist, axis=1)
            if weights is not None:
                per_sample = per_sample * weights
            count = logits.shape[0] if weights is None else xp.sum(weights)
            loss = _scaled(xp, per_sample, reduction, count)
        ctx.saved = (probs, target, labels, weights, reduction, label_smoothing, fused)
        return loss

    @staticmethod
    def fused_mean(ctx: Node, logits: Array, labels: Array) -> Array | None:
        """The batch-mean loss of logits and integer labels by the numba loops, with what
        ``backward`` needs kept in ``ctx``, where they apply: NumPy float logits (N, C) and int64
        labels (N,), every label in range (so a caller's checks of those may be skipped);
        else None (``ctx`` untouched)."""
        fast = loss_kernels.softmax_cross_entropy(logits, labels)
        if fast is None:
            return None
        loss, probs = fast
        ctx.saved = (probs, labels, True, None, "mean", 0.0, True)
        return loss

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        probs, target, labels, weights, reduction, smoothing, fused = ctx.saved
        xp = namespace(probs)
        if reduction == "mean" and not smoothing and weights is None:
            return (_times(g, softmax_gradient(xp, probs, target, labels, fused)), None)
        dist = _target_distribution(xp, probs, target, labels, smoothing)
        grad = probs * xp.sum(dist, axis=1, keepdims=True) - dist
        scale = g[:, None] if reduction == "none" else g
        if weights is not None:
            grad = grad * weights[:, None]
            if reduction == "mean":
                scale = scale / xp.sum(weights)
        elif reduction == "mean":
            scale = scale * (1.0 / probs.shape[0])
        return (grad * scale, None)


def _target_distribution(xp: Any, like: Array, target: Array, labels: bool, smoothing: float) -> Array:
    """The (N, C) target: one-hot of the labels (or the given probabilities), smoothed."""
    dist = xp.astype(label_mask(xp, like, target), like.dtype) if labels else target
    if smoothing:
        dist = dist * (1.0 - smoothing) + smoothing / like.shape[1]
    return dist


def softmax_gradient(xp: Any, probs: Array, target: Array, labels: bool, fused: bool) -> Array:
    """dL/dlogits of the batch-mean cross-entropy: ``(probs - onehot(target)) / N``."""
    scale = 1.0 / probs.shape[0]
    fast = loss_kernels.softmax_cross_entropy_grad(probs, target) if fused and labels else None
    if fast is not None:
        return fast
    if labels:  # (p - onehot) / N, no one-hot
        scaled = probs * scale
        out = loss_kernels.add_at_labels(scaled, target, -scale) if fused else None
        return xp.where(label_mask(xp, probs, target), scaled - scale, scaled) if out is None else out
    return (probs * xp.sum(target, axis=1, keepdims=True) - target) * scale


class CategoricalCrossEntropy(Function):
    """``L = mean_i(-log p_i[y_i])`` of probabilities clipped as the book does; the backward
    ``-1 / (N p)`` at each label (the book's, of the unclipped probabilities)."""

    name = "categorical_cross_entropy"

    @staticmethod
    def forward(ctx: Node, pred: Array, target: Array, *, labels: bool, fused: bool = True) -> Array:
        ctx.saved = (pred, target, labels)
        return namespace(pred).mean(sample_losses(pred, target, labels, fused))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        pred, target, labels = ctx.saved
        xp = namespace(pred)
        scale = -1.0 / pred.shape[0]
        if labels:
            return (_times(g, xp.where(label_mask(xp, pred, target), scale / pred, 0.0)), None)
        return (_times(g, target / pred * scale), None)


def sample_losses(pred: Array, target: Array, labels: bool, fused: bool) -> Array:
    """The per-sample losses ``-log p_i[y_i]`` of clipped probabilities, shape (batch,)."""
    xp = namespace(pred)
    clipped = clip_probabilities(xp, pred)
    if labels:
        confidence = take_at_labels(xp, clipped, target, fused)[:, 0]
    else:
        confidence = xp.sum(clipped * target, axis=1)
    return -xp.log(confidence)


class BinaryCrossEntropy(Function):
    """``L = mean(-(t log p + (1 - t) log(1 - p)))`` over every output, ``p`` clipped."""

    name = "binary_cross_entropy"

    @staticmethod
    def forward(ctx: Node, pred: Array, target: Array) -> Array:
        xp = namespace(pred)
        p = clip_probabilities(xp, pred)
        ctx.saved = (p, target)
        # p's side first, as in CrossEntropy.forward: the order in which the equations record
        return xp.mean(-(xp.log(p) * target + xp.log(1.0 - p) * (1.0 - target)))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        p, target = ctx.saved
        size = 1.0 / math.prod(p.shape)
        return (_times(g, -(target / p - (1.0 - target) / (1.0 - p)) * size), None)


class MeanSquaredError(Function):
    """``(p - t)**2`` reduced by ``reduction`` (mean: over every element)."""

    name = "mse"

    @staticmethod
    def forward(ctx: Node, pred: Array, target: Array, *, reduction: str = "mean") -> Array:
        xp = namespace(pred)
        diff = pred - target
        ctx.saved = (diff, reduction)
        squares = diff * diff
        if reduction == "none":
            return squares
        return xp.mean(squares) if reduction == "mean" else xp.sum(squares)

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        diff, reduction = ctx.saved
        scale = 2.0 / math.prod(diff.shape) if reduction == "mean" else 2.0
        return (_times(g, diff * scale), None)


class MeanAbsoluteError(Function):
    """``|p - t|`` averaged over every element; the gradient ``sign(p - t) / size`` (from
    comparisons: ``sign`` on torch assigns NaNs through a mask)."""

    name = "mae"

    @staticmethod
    def forward(ctx: Node, pred: Array, target: Array) -> Array:
        xp = namespace(pred)
        diff = pred - target
        ctx.saved = diff
        return xp.mean(xp.abs(diff))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        diff = ctx.saved
        xp = namespace(diff)
        sign = xp.astype(diff > 0, diff.dtype) - xp.astype(diff < 0, diff.dtype)
        return (_times(g, sign * (1.0 / math.prod(diff.shape))), None)

"""The NNFS book's losses (chapters 5, 9, 14) over xpnn's ``CategoricalCrossEntropy`` and
``SoftmaxCrossEntropy``: sparse labels or one-hot rows, checked once per labels array.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

from xpnn import backend
from xpnn.checks import check_array, is_floating, is_integral
from xpnn.errors import LabelError, NotALayerError
from xpnn.nn.dense import Dense
from xpnn.nn.losses import CategoricalCrossEntropy, SoftmaxCrossEntropy
from xpnn.nnfs.layers import Activation_Softmax

Array = Any


class _Labels:
    """Checks the book's ``y_true`` against the predictions and readies it for the core loss.

    Sparse labels of another integer dtype (``spiral_data``'s uint8) are cast to int64 on
    the device on EVERY call (labels changed in place are seen); one-hot rows to the
    predictions' dtype. Label VALUES are checked once per labels array (a host sync); later
    calls with the same array keep that promise on the device without a sync: a label
    changed in place to an out-of-range value gives a NaN loss (and NaN gradient rows),
    never the loss of another class.
    """

    def __init__(self, who: str) -> None:
        self.who = who
        self._checked: Array = None

    def __call__(self, pred: Array, y_true: Array) -> tuple[Array, bool, Array | None]:
        """``(labels, fresh, bad)``: ``fresh`` says the core loss must check the values; ``bad`` is
        the device mask of out-of-range labels (then replaced by 0) where it does not."""
        check_array(self.who, y_true, "y_true")
        check_array(self.who, pred, "predictions")
        if y_true.ndim == 1 and (pred.ndim != 2 or y_true.shape[0] != pred.shape[0]):
            raise LabelError(
                f"{self.who}: expected y_true with one label per sample, {pred.shape[0]} labels "
                f"for inputs of shape {tuple(pred.shape)}; got {y_true.shape[0]} labels"
            )
        ready, xp = y_true, backend.namespace(y_true)
        if not is_integral(y_true):
            return (xp.astype(y_true, pred.dtype) if is_floating(pred) else y_true), True, None
        if y_true.dtype != xp.int64:
            ready = xp.astype(y_true, xp.int64)
        if y_true is not self._checked:
            return ready, True, None
        bad = ready >= pred.shape[1]
        if y_true.dtype != xp.uint8:  # spiral_data's uint8 labels cannot be negative: one op fewer
            bad = bad | (ready < 0)
        return xp.where(bad, 0, ready), False, bad

    def passed(self, y_true: Array) -> None:
        """The core loss has checked the values of ``y_true``: later calls need not sync."""
        if is_integral(y_true):
            self._checked = y_true


def _mark_bad(xp: Any, values: Array, bad: Array | None) -> Array:
    """NaN at the samples (rows) whose label was out of range; ``values`` unchanged otherwise."""
    if bad is None:
        return values
    mask = bad if values.ndim == 1 else bad[:, None]
    return xp.where(mask, math.nan, values)


class Loss:
    """The book's loss base: ``calculate(output, y)`` is the mean loss; ``regularization_loss``."""

    def calculate(self, output: Array, y: Array) -> Array:
        """The mean over samples of ``forward(output, y)``."""
        data_loss = self.forward(output, y)
        return backend.namespace(data_loss).mean(data_loss)

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        """The per-sample losses (a subclass writes it)."""
        raise NotImplementedError

    def regularization_loss(self, layer: Any) -> Any:
        """The layer's L1/L2 penalty (0 when it has none), the book's chapter-14 sum."""
        dense = getattr(layer, "dense", layer)
        if not isinstance(dense, Dense):
            raise NotALayerError(
                f"{type(self).__name__}.regularization_loss: expected a Layer_Dense (or an xpnn.Dense), "
                f"got {type(layer).__name__} {reprlib.repr(layer)}"
            )
        penalty = dense.regularization_loss()
        return penalty.value if hasattr(penalty, "requires_grad") else penalty


class Loss_CategoricalCrossentropy(Loss):
    """The book's categorical cross-entropy of probabilities, clipped to [1e-7, 1 - 1e-7];
    ``y_true`` is sparse labels or one-hot rows. ``forward`` returns the per-sample losses
    (as the book's does), ``calculate`` their mean."""

    def __init__(self) -> None:
        self._loss = CategoricalCrossEntropy()
        self._labels = _Labels(type(self).__name__)

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        """The per-sample losses ``-log(clip(p_true, 1e-7, 1 - 1e-7))``."""
        labels, fresh, bad = self._labels(y_pred, y_true)
        losses = self._loss.sample_losses(y_pred, labels, validate=fresh)
        self._labels.passed(y_true)
        return _mark_bad(backend.namespace(losses), losses, bad)

    def backward(self, dvalues: Array, y_true: Array) -> None:
        """Sets ``dinputs = -onehot(y_true) / dvalues / samples``."""
        labels, fresh, bad = self._labels(dvalues, y_true)
        self._loss.sample_losses(dvalues, labels, validate=fresh)
        self._labels.passed(y_true)
        self.dinputs = _mark_bad(backend.namespace(dvalues), self._loss.backward(), bad)


class Activation_Softmax_Loss_CategoricalCrossentropy:
    """The book's softmax + cross-entropy: ``forward(inputs, y_true)`` sets ``output`` (the
    probabilities) and returns ``Loss_CategoricalCrossentropy.calculate`` of them, the mean of
    the CLIPPED losses (at most -log(1e-7) = 16.1 per sample) exactly as the book does;
    ``backward(dvalues, y_true)`` sets ``dinputs = (dvalues - onehot(y_true)) / samples``.
    The core :class:`xpnn.SoftmaxCrossEntropy` stays exact (logsumexp, no clip)."""

    def __init__(self) -> None:
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()
        self._gradient = SoftmaxCrossEntropy()
        self._labels = _Labels(type(self).__name__)

    def forward(self, inputs: Array, y_true: Array) -> Array:
        """Sets ``output`` (the softmax) and returns the mean clipped cross-entropy."""
        labels, fresh, bad = self._labels(inputs, y_true)
        self.activation.forward(inputs)
        self.output = self.activation.output
        losses = self.loss._loss.sample_losses(self.output, labels, validate=fresh)
        self._labels.passed(y_true)
        xp = backend.namespace(losses)
        return xp.mean(_mark_bad(xp, losses, bad))

    def backward(self, dvalues: Array, y_true: Array) -> None:
        """Sets ``dinputs = (dvalues - onehot(y_true)) / samples``."""
        labels, fresh, bad = self._labels(dvalues, y_true)
        dinputs = self._gradient.gradient(dvalues, labels, validate=fresh)
        self._labels.passed(y_true)
        self.dinputs = _mark_bad(backend.namespace(dinputs), dinputs, bad)

"""The NNFS book's losses (chapters 5, 9, 14) over xpnn's ``CategoricalCrossEntropy`` and
``SoftmaxCrossEntropy``: sparse labels or one-hot rows, checked once per labels array.
"""

from __future__ import annotations

import reprlib
from typing import Any

from xpnn import backend
from xpnn.errors import LabelError, NotALayerError
from xpnn.nn.checks import check_array, is_integral
from xpnn.nn.layers import Dense
from xpnn.nn.losses import CategoricalCrossEntropy, SoftmaxCrossEntropy
from xpnn.nnfs.layers import Activation_Softmax

Array = Any


class _Labels:
    """Checks the book's ``y_true`` against the predictions and readies it for the core loss.

    Sparse labels of another integer dtype (``spiral_data``'s uint8) are cast to int64 on
    the device, which every backend's gather accepts; one-hot rows to the predictions' dtype.
    Label VALUES are checked once per labels array (a host sync), not every epoch.
    """

    def __init__(self, who: str) -> None:
        self.who = who
        self._seen: Array = None
        self._ready: Array = None

    def __call__(self, pred: Array, y_true: Array) -> tuple[Array, bool]:
        check_array(self.who, y_true, "y_true")
        if y_true is self._seen:
            return self._ready, False
        if y_true.ndim == 1 and y_true.shape[0] != pred.shape[0]:
            raise LabelError(
                f"{self.who}: expected y_true with one label per sample, {pred.shape[0]} labels "
                f"for inputs of shape {tuple(pred.shape)}; got {y_true.shape[0]} labels"
            )
        ready, xp = y_true, backend.namespace(y_true)
        if is_integral(y_true) and backend.dtype_name(y_true.dtype) != "int64":
            ready = xp.astype(y_true, xp.int64)
        elif not is_integral(y_true) and y_true.dtype != pred.dtype:  # one-hot rows
            ready = xp.astype(y_true, pred.dtype)
        self._seen, self._ready = y_true, ready
        return ready, True


class Loss:
    """The book's loss base: ``calculate(output, y)`` is the mean loss; ``regularization_loss``."""

    def calculate(self, output: Array, y: Array) -> Array:
        data_loss = self.forward(output, y)
        return backend.namespace(data_loss).mean(data_loss)

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        raise NotImplementedError

    def regularization_loss(self, layer: Any) -> Any:
        """The layer's L1/L2 penalty (0 when it has none), the book's chapter-14 sum."""
        dense = getattr(layer, "dense", layer)
        if not isinstance(dense, Dense):
            raise NotALayerError(
                f"{type(self).__name__}.regularization_loss: expected a Layer_Dense (or an xpnn.Dense), "
                f"got {type(layer).__name__} {reprlib.repr(layer)}"
            )
        return dense.regularization_loss()


class Loss_CategoricalCrossentropy(Loss):
    """The book's categorical cross-entropy of probabilities, clipped to [1e-7, 1 - 1e-7];
    ``y_true`` is sparse labels or one-hot rows."""

    def __init__(self) -> None:
        self._loss = CategoricalCrossEntropy()
        self._labels = _Labels(type(self).__name__)

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        labels, fresh = self._labels(y_pred, y_true)
        return self._loss.forward(y_pred, labels, validate=fresh)

    def backward(self, dvalues: Array, y_true: Array) -> None:
        labels, fresh = self._labels(dvalues, y_true)
        if dvalues is not self._loss.pred or labels is not self._loss.target:
            self._loss.forward(dvalues, labels, validate=fresh)
        self.dinputs = self._loss.backward()


class Activation_Softmax_Loss_CategoricalCrossentropy:
    """The book's fused softmax + cross-entropy: ``forward(inputs, y_true)`` returns the mean loss
    and sets ``output`` (the probabilities); ``backward(dvalues, y_true)`` sets
    ``dinputs = (probabilities - onehot(y_true)) / samples``."""

    def __init__(self) -> None:
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()
        self._fused = SoftmaxCrossEntropy()
        self._labels = _Labels(type(self).__name__)

    def forward(self, inputs: Array, y_true: Array) -> Array:
        labels, fresh = self._labels(inputs, y_true)
        loss = self._fused.forward(inputs, labels, validate=fresh)
        self.output = self._fused.probs
        return loss

    def backward(self, dvalues: Array, y_true: Array) -> None:
        labels, _ = self._labels(dvalues, y_true)
        # the fused backward needs only the probabilities and the labels: take the given ones
        self._fused.probs, self._fused.pred, self._fused.target = dvalues, dvalues, labels
        self._fused.labels = is_integral(labels)
        self.dinputs = self._fused.backward()

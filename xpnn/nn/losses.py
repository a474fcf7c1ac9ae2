"""Loss objects over :mod:`xpnn.functional.losses`.

Called on a Tensor, a loss records one node and returns a 0-d Tensor (``loss(pred, y)
.backward()``). Called on plain arrays (the NNFS book's way), ``forward(pred, target)``
returns the batch mean as a 0-d array and ``backward()`` returns dL/dpred for it.

The loss stays an array on the device: no host synchronisation per step unless asked.
``validate=True`` (the default for a direct call) checks label values, one host sync;
training loops validate all labels once up front and pass ``validate=False``.
``check_finite=True`` raises :class:`NonFiniteLossError` on a NaN or infinite loss.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function, output
from xpnn.autograd.graph import Node
from xpnn.autograd.tensor import Tensor
from xpnn.backend import backend_name, device_of, namespace
from xpnn.checks import check_array, check_floating, check_number, is_integral
from xpnn.errors import BackendMismatchError, ForwardFirstError, LabelError, NonFiniteLossError, ShapeError
from xpnn.functional import losses as fl

Array = Any


class Loss:
    """Base class; a subclass names its ``function`` and the keyword options it passes."""

    function: type[Function]
    takes_labels = False  # True: integer class labels are accepted as targets
    classifies = True  # False for regression losses: fit reports no accuracy for them

    def __init__(self, *, validate: bool = True, check_finite: bool = False) -> None:
        self.validate = validate
        self.check_finite = check_finite

    def options(self, labels: bool) -> dict[str, Any]:
        """The function's keyword options for targets that are (or are not) integer labels."""
        return {}

    def __call__(self, pred: Any, target: Any, *, validate: bool | None = None) -> Any:
        """The loss of ``pred`` (a Tensor: a 0-d Tensor, recorded; an array: as ``forward``)."""
        if not isinstance(pred, Tensor):
            return self.forward(pred, target, validate=validate)
        target = target.value if isinstance(target, Tensor) else target
        function = self.function
        ctx = Node(function.backward, (pred if pred.requires_grad else None, None), None, function.name)
        value = self._fused(ctx, pred.value, target)
        if value is None:
            _, _, target, labels = self._prepare(pred.value, target, validate)
            loss = function.apply(pred, target, **self.options(labels))
        else:
            ctx.options = self.options(True)
            loss = output(ctx, value, pred.requires_grad)
        self._check_finite(loss.value)
        return loss

    def forward(self, pred: Array, target: Array, *, validate: bool | None = None) -> Array:
        """The mean loss over the batch, as a 0-d array on ``pred``'s device."""
        ctx = self.function.context()
        loss = self._fused(ctx, pred, target)
        if loss is None:
            xp, pred, target, labels = self._prepare(pred, target, validate)
            loss = self.function.forward(ctx, pred, target, **self.options(labels))
            if type(loss) is not type(pred):  # NumPy's reductions give a scalar, not a 0-d array
                loss = xp.asarray(loss)
        ctx.inputs, ctx.needs = (None, None), (True, False)
        self._ctx = ctx
        self._check_finite(loss)
        return loss

    def backward(self) -> Array:
        """dL/dpred for the last plain-array ``forward`` (the gradient of the batch mean)."""
        ctx = vars(self).get("_ctx")
        if ctx is None:
            raise ForwardFirstError(f"{type(self).__name__}.backward: called before forward")
        return self.function.backward(ctx, 1.0)[0]

    def _fused(self, ctx: Node, pred: Array, target: Array) -> Array | None:
        """The loss by a kernel that checks everything :meth:`_prepare` would (so those checks
        are skipped), its state kept in ``ctx``; None where none applies (the checked path)."""
        return None

    def _check_finite(self, loss: Array) -> None:
        if self.check_finite and not bool(namespace(loss).isfinite(loss)):
            raise NonFiniteLossError(f"{type(self).__name__}: the loss is {float(loss)} (not finite)")

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
        bad = (target < 0) | (target >= classes)
        ignored = self.options(True).get("ignore_index")
        if ignored is not None:
            bad = bad & (target != ignored)
        if bool(xp.any(bad)):
            raise LabelError(
                f"{type(self).__name__}: labels must be in [0, {classes}), got values in "
                f"[{int(xp.min(target))}, {int(xp.max(target))}]"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Loss):
    """Softmax and cross-entropy fused: takes logits, integer labels or (soft) one-hot targets.

    ``L = mean_i(logsumexp(z_i) - z_i[y_i])``, stable for any logits; the backward is the
    cheap ``(softmax(z) - onehot(y)) / N``. ``label_smoothing`` and ``ignore_index`` as torch's
    ``CrossEntropyLoss``. ``fused`` (on by default): NumPy's ufunc reduces, integer-array label
    pick, and, where numba is installed, NumPy logits with int64 labels in three loops and one
    pass (:mod:`xpnn.kernels.cross_entropy`, the same bits, the label range checked there).
    """

    function = fl.CrossEntropy
    takes_labels = True
    fused: bool = True

    def __init__(
        self,
        *,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        validate: bool = True,
        check_finite: bool = False,
    ) -> None:
        super().__init__(validate=validate, check_finite=check_finite)
        self.label_smoothing = check_number(type(self).__name__, "label_smoothing", label_smoothing, 0.0, 1.0)
        self.ignore_index = ignore_index

    def options(self, labels: bool) -> dict[str, Any]:
        return {"labels": labels, "label_smoothing": self.label_smoothing,
                "ignore_index": self.ignore_index if labels else None, "fused": self.fused}  # fmt: skip

    def _fused(self, ctx: Node, pred: Array, target: Array) -> Array | None:
        if self.fused and not self.label_smoothing and self.ignore_index is None:
            return fl.CrossEntropy.fused_mean(ctx, pred, target)
        return None

    def gradient(self, probs: Array, target: Array, *, validate: bool | None = None) -> Array:
        """dL/dlogits ``(probs - onehot(target)) / N`` from given softmax probabilities (the NNFS
        book's fused backward takes them as its input); checks ``target`` as ``forward`` does
        and changes no state."""
        xp, probs, target, labels = self._prepare(probs, target, validate)
        return fl.softmax_gradient(xp, probs, target, labels, self.fused)


class CategoricalCrossEntropy(Loss):
    """Cross-entropy of probabilities (e.g. a Softmax output), clipped to [1e-7, 1 - 1e-7]
    as the NNFS book does: ``L = mean_i(-log p_i[y_i])``. ``fused``: the label pick by NumPy's
    integer indexing."""

    function = fl.CategoricalCrossEntropy
    takes_labels = True
    fused: bool = True

    def options(self, labels: bool) -> dict[str, Any]:
        return {"labels": labels, "fused": self.fused}

    def sample_losses(self, pred: Array, target: Array, *, validate: bool | None = None) -> Array:
        """The per-sample losses ``-log p_i[y_i]`` (the NNFS book's ``forward``), shape (batch,);
        sets the state ``backward`` uses, as ``forward`` does."""
        _, pred, target, labels = self._prepare(pred, target, validate)
        ctx = self.function.context()
        ctx.saved, ctx.inputs, ctx.needs = (pred, target, labels), (None, None), (True, False)
        self._ctx = ctx
        return fl.sample_losses(pred, target, labels, self.fused)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy of probabilities (e.g. a Sigmoid output), clipped as the book does:
    ``L = mean(-(t * log p + (1 - t) * log(1 - p)))`` over every output."""

    function = fl.BinaryCrossEntropy


class MSE(Loss):
    """Mean squared error ``L = mean((p - t)**2)`` over every output."""

    function = fl.MeanSquaredError
    classifies = False


class MAE(Loss):
    """Mean absolute error ``L = mean(|p - t|)`` over every output."""

    function = fl.MeanAbsoluteError
    classifies = False

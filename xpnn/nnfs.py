"""The NNFS book's classes ("Neural Networks from Scratch in Python", Kinsley & Kukiela), over xpnn.

The book's names, constructor signatures, defaults, attributes and calling style, as a thin
layer over xpnn's core: ``Layer_Dense`` is an :class:`xpnn.Dense` (``init="nnfs"``), the
activations and losses are xpnn's, and each book optimizer drives ONE core optimizer
(:class:`xpnn.SGD`, :class:`xpnn.AdaGrad`, :class:`xpnn.RMSProp`, :class:`xpnn.Adam`). No
equation lives here twice. The book's loop runs unchanged on any backend: give it arrays of
that backend (``np.argmax`` / ``np.mean`` for the accuracy replaced by the namespace's own).

Differences from the book, all deliberate:

- A layer's weights follow its input at the first forward (after construction or after its
  ``weights`` / ``biases`` are assigned): moved to the input's backend, device and floating
  dtype, once. Later mismatches raise xpnn's ``BackendMismatchError`` / ``DTypeError``.
- ``Loss.forward`` returns the batch mean (a 0-d array), not the per-sample vector; the mean
  of it, which is all the book ever uses (``calculate``), is the same number.
- Softmax backward is the Jacobian-vector product, not the per-sample Jacobian matrix:
  the same numbers, O(classes) instead of O(classes**2) per sample.
"""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.activations import ReLU, Softmax
from xpnn.checks import check_array, is_floating, is_integral
from xpnn.errors import LabelError, OptimizerError, ShapeError
from xpnn.layers import Dense, Layer
from xpnn.losses import CategoricalCrossEntropy, SoftmaxCrossEntropy
from xpnn.optimizer_base import Optimizer, move_like
from xpnn.optimizers import SGD, AdaGrad, Adam, RMSProp
from xpnn.parameter import Parameter

Array = Any

__all__ = [
    "Activation_ReLU",
    "Activation_Softmax",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Layer_Dense",
    "Loss",
    "Loss_CategoricalCrossentropy",
    "Optimizer_Adagrad",
    "Optimizer_Adam",
    "Optimizer_RMSprop",
    "Optimizer_SGD",
]


class Layer_Dense:
    """The book's dense layer: ``output = inputs @ weights + biases``.

    Weights start as ``0.01 * np.random.randn(n_inputs, n_neurons)`` from NumPy's global
    generator (as the book draws them; float32), biases as zeros of shape ``(1, n_neurons)``.
    The L1/L2 regularizers are the book's chapter-14 ones (see ``Loss.regularization_loss``).
    """

    def __init__(
        self,
        n_inputs: int,
        n_neurons: int,
        weight_regularizer_l1: float = 0,
        weight_regularizer_l2: float = 0,
        bias_regularizer_l1: float = 0,
        bias_regularizer_l2: float = 0,
    ) -> None:
        self.dense = Dense(
            n_inputs,
            n_neurons,
            init="nnfs",
            weight_regularizer_l1=weight_regularizer_l1,
            weight_regularizer_l2=weight_regularizer_l2,
            bias_regularizer_l1=bias_regularizer_l1,
            bias_regularizer_l2=bias_regularizer_l2,
            seed=0,  # replaced below by the book's draw from the global generator
        )
        self.dense.weight.value = backend.legacy_randn((n_inputs, n_neurons), 0.01)
        self._placed = False
        self.inputs: Array = None
        self.output: Array = None
        self.dinputs: Array = None

    # -- the book's attributes, as views of the core layer's parameters --------------------------
    @property
    def weights(self) -> Array:
        return self.dense.weight.value

    @weights.setter
    def weights(self, value: Array) -> None:
        self._set(self.dense.weight, value, (self.dense.n_in, self.dense.n_out), "weights")

    @property
    def biases(self) -> Array:
        return _row(self.dense.bias.value)

    @biases.setter
    def biases(self, value: Array) -> None:
        self._set(self.dense.bias, value, (1, self.dense.n_out), "biases")

    @property
    def dweights(self) -> Array:
        return self.dense.weight.grad

    @dweights.setter
    def dweights(self, grad: Array) -> None:
        self.dense.weight.grad = grad

    @property
    def dbiases(self) -> Array:
        grad = self.dense.bias.grad
        return None if grad is None else _row(grad)

    @dbiases.setter
    def dbiases(self, grad: Array) -> None:
        self.dense.bias.grad = None if grad is None else backend.namespace(grad).reshape(grad, (-1,))

    @property
    def weight_regularizer_l1(self) -> float:
        return self.dense.regularizers[0]

    @property
    def weight_regularizer_l2(self) -> float:
        return self.dense.regularizers[1]

    @property
    def bias_regularizer_l1(self) -> float:
        return self.dense.regularizers[2]

    @property
    def bias_regularizer_l2(self) -> float:
        return self.dense.regularizers[3]

    def _set(self, param: Parameter, value: Array, shape: tuple[int, ...], name: str) -> None:
        check_array(f"Layer_Dense.{name}", value, name)
        if tuple(value.shape) != shape:
            raise ShapeError(f"Layer_Dense.{name}: expected shape {shape}, got {tuple(value.shape)}")
        param.value = backend.namespace(value).reshape(value, tuple(param.value.shape))
        self._placed = False  # the next forward moves both parameters to the input's backend

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, inputs: Array) -> None:
        if not self._placed:
            self._follow(inputs)
        self.inputs = inputs
        self.output = self.dense.forward(inputs)

    def backward(self, dvalues: Array) -> None:
        # the book overwrites dweights / dbiases each backward; the core layer adds into .grad
        self.dense.weight.grad = self.dense.bias.grad = None
        self.dinputs = self.dense.backward(dvalues)

    def _follow(self, inputs: Array) -> None:
        """Move the parameters to the input's backend, device and dtype (once, before training)."""
        check_array("Layer_Dense", inputs)
        if not is_floating(inputs):
            return  # the core layer raises its DTypeError
        for p in self.dense.parameters():
            same_kind = type(p.value) is type(inputs) and p.value.dtype == inputs.dtype
            if not same_kind or backend.device_of(p.value) != backend.device_of(inputs):
                p.value, p.grad = move_like(backend.to_host(p.value), inputs), None
        self._placed = True


def _row(vector: Array) -> Array:
    """A (n,) bias presented as the book's (1, n) row."""
    return backend.namespace(vector).reshape(vector, (1, vector.shape[0]))


class Activation_ReLU:
    """The book's ReLU: ``output = max(0, inputs)``; the gradient is zero where ``inputs <= 0``."""

    def __init__(self) -> None:
        self._relu = ReLU()

    def forward(self, inputs: Array) -> None:
        self.inputs = inputs
        self.output = self._relu.forward(inputs)

    def backward(self, dvalues: Array) -> None:
        self.dinputs = self._relu.backward(dvalues)


class Activation_Softmax:
    """The book's softmax over each row (shifted by the row max for stability)."""

    def __init__(self) -> None:
        self._softmax = Softmax()

    def forward(self, inputs: Array) -> None:
        self.inputs = inputs
        self.output = self._softmax.forward(inputs)

    def backward(self, dvalues: Array) -> None:
        self.dinputs = self._softmax.backward(dvalues)

    def predictions(self, outputs: Array) -> Array:
        return backend.namespace(outputs).argmax(outputs, axis=1)


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
            raise TypeError(
                f"{type(self).__name__}.regularization_loss: expected a Layer_Dense, "
                f"got {type(layer).__name__}"
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


class _BookOptimizer:
    """The book's optimizer calling style over ONE core optimizer (``self.core``).

    ``update_params(layer)`` registers the layer's parameters with the core optimizer the
    first time it sees the layer, then runs a core step restricted to that layer (the other
    parameters' gradients are set aside for it) at step count ``t`` = the ``iterations`` of
    the last ``pre_update_params``, so the learning rate is the book's
    ``current_learning_rate``. State (momentum, caches) is the core's, per parameter; Adam's
    bias correction counts the parameter's own updates, which is the book's
    ``iterations + 1`` when every layer is updated once per iteration, as its loop does.
    """

    def __init__(self, learning_rate: float, decay: float) -> None:
        self.learning_rate = float(learning_rate)
        self.current_learning_rate = self.learning_rate
        self.decay = float(decay)
        self.iterations = 0
        self.core: Optimizer | None = None
        self._layers: dict[int, tuple[Any, list[Parameter]]] = {}
        self._t = 0

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        raise NotImplementedError

    def pre_update_params(self) -> None:
        self._t = self.iterations
        if self.core is not None:
            self.current_learning_rate = self.core.lr_at(self._t)

    def update_params(self, layer: Any) -> None:
        params = self._parameters_of(layer)
        core: Any = self.core
        others = [p for p in core.parameters() if all(p is not q for q in params)]
        set_aside = [p.grad for p in others]
        for p in others:
            p.grad = None
        core.t = self._t
        try:
            core.step()
        finally:
            for p, grad in zip(others, set_aside, strict=True):
                p.grad = grad

    def post_update_params(self) -> None:
        self.iterations += 1

    def _parameters_of(self, layer: Any) -> list[Parameter]:
        """The layer's core Parameters (registered with the core optimizer at first sight)."""
        who = f"{type(self).__name__}.update_params"
        known = self._layers.get(id(layer))
        if known is None or known[0] is not layer:
            dense = layer.dense if isinstance(layer, Layer_Dense) else layer
            if not isinstance(dense, Layer) or not dense.parameters():
                raise OptimizerError(
                    f"{who}: expected a layer with weights and dweights (a Layer_Dense), "
                    f"got {type(layer).__name__}, which has none"
                )
            params = dense.parameters()
            if self.core is None:
                self.core = self._make_core(params)
            else:
                self.core.add_param_group({"params": params})
            known = self._layers[id(layer)] = (layer, params)
        for p in known[1]:
            if p.grad is None:
                raise OptimizerError(
                    f"{who}: {type(layer).__name__} has no gradient for its {p.name} "
                    "(dweights / dbiases is None): call backward before update_params"
                )
        return known[1]


class Optimizer_SGD(_BookOptimizer):
    """The book's SGD: ``v = momentum * v - lr_t * dw; w += v`` (plain ``w -= lr_t * dw`` without
    momentum), ``lr_t = learning_rate / (1 + decay * iterations)``: :class:`xpnn.SGD` with
    ``momentum_style="nnfs"``."""

    def __init__(self, learning_rate: float = 1.0, decay: float = 0.0, momentum: float = 0.0) -> None:
        super().__init__(learning_rate, decay)
        self.momentum = float(momentum)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        lr, momentum = self.learning_rate, self.momentum
        return SGD(params, lr, momentum=momentum, decay=self.decay, momentum_style="nnfs")


class Optimizer_Adagrad(_BookOptimizer):
    """The book's AdaGrad: ``cache += dw**2; w -= lr_t * dw / (sqrt(cache) + epsilon)``
    (:class:`xpnn.AdaGrad`)."""

    def __init__(self, learning_rate: float = 1.0, decay: float = 0.0, epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = float(epsilon)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        return AdaGrad(params, self.learning_rate, decay=self.decay, eps=self.epsilon)


class Optimizer_RMSprop(_BookOptimizer):
    """The book's RMSprop: ``cache = rho * cache + (1 - rho) * dw**2;
    w -= lr_t * dw / (sqrt(cache) + epsilon)`` (:class:`xpnn.RMSProp`)."""

    def __init__(
        self, learning_rate: float = 0.001, decay: float = 0.0, epsilon: float = 1e-7, rho: float = 0.9
    ) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon, self.rho = float(epsilon), float(rho)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        return RMSProp(params, self.learning_rate, rho=self.rho, eps=self.epsilon, decay=self.decay)


class Optimizer_Adam(_BookOptimizer):
    """The book's Adam: bias-corrected moments ``m_hat / (sqrt(v_hat) + epsilon)``
    (:class:`xpnn.Adam`; the book's default epsilon is 1e-7)."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
    ) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon, self.beta_1, self.beta_2 = float(epsilon), float(beta_1), float(beta_2)

    def _make_core(self, params: list[Parameter]) -> Optimizer:
        betas = (self.beta_1, self.beta_2)
        return Adam(params, self.learning_rate, betas=betas, eps=self.epsilon, decay=self.decay)

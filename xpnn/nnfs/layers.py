"""The NNFS book's dense layer and activations (chapters 3-4, 9, 14) over xpnn's ``Dense``,
``ReLU`` and ``Softmax``.

``Layer_Dense`` keeps the book's attributes (``weights``, ``biases`` as a (1, n) row,
``dweights``, ``dbiases``, the regularizer strengths) as views of the core layer's
parameters, and moves them to its input's backend, device and dtype at the first forward.
"""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.backend import move_like
from xpnn.checks import check_array, is_floating
from xpnn.data.synthetic import book_randn
from xpnn.errors import ShapeError
from xpnn.nn.activations import ReLU, Softmax
from xpnn.nn.dense import Dense
from xpnn.nn.parameter import Parameter

Array = Any


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
        self.dense.weight.value = book_randn((n_inputs, n_neurons), 0.01)
        self._placed = False
        self.inputs: Array = None
        self.output: Array = None
        self.dinputs: Array = None

    # -- the book's attributes, as views of the core layer's parameters --------------------------
    @property
    def _bias(self) -> Parameter:
        bias = self.dense.bias
        assert bias is not None  # the book's layer always has biases
        return bias

    @property
    def weights(self) -> Array:
        """The book's ``weights`` (n_inputs, n_neurons): the core Dense's weight array."""
        return self.dense.weight.value

    @weights.setter
    def weights(self, value: Array) -> None:
        self._set(self.dense.weight, value, (self.dense.n_in, self.dense.n_out), "weights")

    @property
    def biases(self) -> Array:
        """The book's ``biases`` (1, n_neurons) (the core's (n,) bias as a row)."""
        return _row(self._bias.value)

    @biases.setter
    def biases(self, value: Array) -> None:
        self._set(self._bias, value, (1, self.dense.n_out), "biases")

    @property
    def dweights(self) -> Array:
        """dL/dweights of the last ``backward`` (None before one)."""
        return self.dense.weight.grad

    @dweights.setter
    def dweights(self, grad: Array) -> None:
        self.dense.weight.grad = grad

    @property
    def dbiases(self) -> Array:
        """dL/dbiases (1, n_neurons) of the last ``backward`` (None before one)."""
        grad = self._bias.grad
        return None if grad is None else _row(grad)

    @dbiases.setter
    def dbiases(self, grad: Array) -> None:
        self._bias.grad = None if grad is None else backend.namespace(grad).reshape(grad, (-1,))

    @property
    def weight_regularizer_l1(self) -> float:
        """The chapter-14 L1 factor on the weights."""
        return self.dense.regularizers[0]

    @property
    def weight_regularizer_l2(self) -> float:
        """The chapter-14 L2 factor on the weights."""
        return self.dense.regularizers[1]

    @property
    def bias_regularizer_l1(self) -> float:
        """The chapter-14 L1 factor on the biases."""
        return self.dense.regularizers[2]

    @property
    def bias_regularizer_l2(self) -> float:
        """The chapter-14 L2 factor on the biases."""
        return self.dense.regularizers[3]

    def _set(self, param: Parameter, value: Array, shape: tuple[int, ...], name: str) -> None:
        check_array(f"Layer_Dense.{name}", value, name)
        if tuple(value.shape) != shape:
            raise ShapeError(f"Layer_Dense.{name}: expected shape {shape}, got {tuple(value.shape)}")
        param.value = backend.namespace(value).reshape(value, tuple(param.value.shape))
        self._placed = False  # the next forward moves both parameters to the input's backend

    # -- forward and backward ----------------------------------------------------------------------
    def forward(self, inputs: Array) -> None:
        """``output = inputs @ weights + biases`` (the book's; keeps ``inputs``)."""
        if not self._placed:
            self._follow(inputs)
        self.inputs = inputs
        self.output = self.dense.forward(inputs)

    def backward(self, dvalues: Array) -> None:
        """Sets ``dweights``, ``dbiases`` (with the regularizers' gradients) and ``dinputs``
        from ``dvalues``."""
        # the book overwrites dweights / dbiases each backward; the core layer adds into .grad
        self.dense.weight.grad = self._bias.grad = None
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


class _BookActivation:
    """The book's calling style (``inputs``, ``output``, ``dinputs``) over a core activation."""

    def __init__(self, core: Any) -> None:
        self._core = core

    def forward(self, inputs: Array) -> None:
        """Sets ``output`` for ``inputs`` (and keeps ``inputs``)."""
        self.inputs = inputs
        self.output = self._core.forward(inputs)

    def backward(self, dvalues: Array) -> None:
        """Sets ``dinputs`` from ``dvalues``, the gradient of the loss with respect to ``output``."""
        self.dinputs = self._core.backward(dvalues)


class Activation_ReLU(_BookActivation):
    """The book's ReLU: ``output = max(0, inputs)``; the gradient is zero where ``inputs <= 0``."""

    def __init__(self) -> None:
        super().__init__(ReLU())


class Activation_Softmax(_BookActivation):
    """The book's softmax over each row (shifted by the row max for stability)."""

    def __init__(self) -> None:
        super().__init__(Softmax())

    def predictions(self, outputs: Array) -> Array:
        """The predicted class of each row: ``argmax(outputs, axis=1)``."""
        return backend.namespace(outputs).argmax(outputs, axis=1)

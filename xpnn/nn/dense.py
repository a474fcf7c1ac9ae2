"""Dense: the fully connected layer ``y = x @ weight + bias`` with the NNFS book's regularizers.

Forward and backward sit side by side; the plain Array API expressions are the definition and
``Dense.fused`` tries the in-place NumPy kernels of :mod:`xpnn.backend.numpy_fast` beside them.
"""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.backend import numba_layers, numpy_fast
from xpnn.errors import ArgumentError, ShapeError
from xpnn.nn.checks import (
    check_array,
    check_count,
    check_floating,
    check_like,
    check_number,
    check_rank,
    check_seed,
)
from xpnn.nn.init import INITS, initial_weights
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter

Array = Any


class Dense(Layer):
    """Fully connected layer ``y = x @ weight + bias``, weight (n_in, n_out), bias (n_out,).

    ``init``: ``"glorot_uniform"`` (default), ``"he_normal"``, ``"he_uniform"`` or ``"nnfs"``
    (the book's ``0.01 * randn``). The NNFS chapter-14 regularizers add
    ``l1 * sum|w| + l2 * sum(w**2)`` (and likewise for the bias) to the loss via
    :meth:`regularization_loss`, and their gradients in :meth:`backward`.

    ``fused`` (on by default; per layer or ``Dense.fused = False`` for all) lets NumPy add the
    bias in place into the fresh product and write the weight and bias gradients straight into
    the optimizer's flat gradient buffer (:mod:`xpnn.backend.numpy_fast`): the same numbers.
    """

    fused: bool = True

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        init: str = "glorot_uniform",
        weight_regularizer_l1: float = 0.0,
        weight_regularizer_l2: float = 0.0,
        bias_regularizer_l1: float = 0.0,
        bias_regularizer_l2: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.n_in, self.n_out = check_count("Dense", "n_in", n_in), check_count("Dense", "n_out", n_out)
        self.init = init
        self.x: Array = None
        strengths = {
            "weight_regularizer_l1": weight_regularizer_l1,
            "weight_regularizer_l2": weight_regularizer_l2,
            "bias_regularizer_l1": bias_regularizer_l1,
            "bias_regularizer_l2": bias_regularizer_l2,
        }
        self.regularizers = tuple(check_number("Dense", k, v, low=0.0) for k, v in strengths.items())
        if init not in INITS:
            raise ArgumentError(f"Dense: unknown init {init!r}; expected one of {', '.join(INITS)}")
        self.weight = Parameter(None, "weight")
        self.bias = Parameter(None, "bias")
        self.reset_parameters(backend.host_rng(check_seed("Dense", seed)))

    def reset_parameters(self, rng: Any) -> None:
        old = self.weight.value
        shape = (self.n_in, self.n_out)
        weight = initial_weights(rng, self.init, shape, fan_in=self.n_in, fan_out=self.n_out)
        bias = backend.host_zeros((self.n_out,))
        if old is not None:  # keep the parameters' backend, device AND dtype (float64 stays)
            weight, bias = backend.move_like(weight, old), backend.move_like(bias, old)
        self.weight.value, self.bias.value = weight, bias
        self.weight.grad = self.bias.grad = None

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def _name(self) -> str:
        return f"Dense({self.n_in} -> {self.n_out})"

    def forward(self, x: Array) -> Array:
        w = self._take_input(x)
        out = numpy_fast.affine(x, w, self.bias.value) if self.fused else None
        return x @ w + self.bias.value if out is None else out

    def forward_relu(self, x: Array) -> Array:
        """``maximum(forward(x), 0.0)``: this layer and the ReLU after it in a Sequential. With
        ``fused``, where numba is installed, the bias add and the maximum are one pass over the
        fresh product (:func:`xpnn.backend.numba_layers.bias_relu`, the same numbers)."""
        w = self._take_input(x)
        out = x @ w
        y = numba_layers.bias_relu(out, self.bias.value) if self.fused else None
        return backend.namespace(out).maximum(out + self.bias.value, 0.0) if y is None else y

    def _take_input(self, x: Array) -> Array:
        """Check ``x`` and cache it for backward; the weight."""
        w = self.weight.value
        ok = type(x) is type(w) and x.dtype == w.dtype and x.ndim == 2 and x.shape[1] == self.n_in
        if not ok or backend.device_of(x) != backend.device_of(w):
            self._reject(x, w)
        self.x = x
        return w

    def _reject(self, x: Array, w: Array) -> None:
        """Raise the specific error for an input the fast check in ``forward`` refused."""
        name = self._name()
        check_array(name, x)
        check_rank(name, x, 2, f"(batch, {self.n_in})")
        if x.shape[1] != self.n_in:
            raise ShapeError(f"{name}: expected input of shape (batch, {self.n_in}), got {tuple(x.shape)}")
        check_floating(name, x)
        check_like(name, x, w)

    def backward(self, dout: Array) -> Array | None:
        return self._backward(dout, None)

    def backward_relu(self, dout: Array, relu: Any, owned: bool) -> Array | None:
        """``backward(relu.backward(dout))`` for the ReLU after this layer in a Sequential. With
        ``fused``, where numba is installed, the ReLU's mask and this layer's bias gradient are
        one pass (:func:`xpnn.backend.numba_layers.relu_grad_bias`, the same numbers), written
        into ``dout`` itself when ``owned`` (a fresh array no one else holds)."""
        mask_source, x = relu._cached("x"), self._cached("x")  # ReLU's x, or its output: y > 0 where x > 0
        fast = None
        if self.fused and relu.fused and type(dout) is type(mask_source):
            if tuple(mask_source.shape) == tuple(dout.shape) == (x.shape[0], self.n_out):
                fast = numba_layers.relu_grad_bias(mask_source, dout, self.bias.gradient_out(), owned)
        if fast is None:
            return self._backward(relu.backward(dout), None)  # the plain pair, its checks and errors
        return self._backward(*fast)

    def _backward(self, dout: Array, db: Array | None) -> Array | None:
        """dL/dx, adding this layer's gradients into ``.grad``; ``db`` the bias gradient where the
        caller summed it already."""
        x = self._cached("x")
        w, b = self.weight.value, self.bias.value
        if type(dout) is not type(w) or tuple(dout.shape) != (x.shape[0], self.n_out):
            self._reject_gradient(dout, x, w)
        xp = backend.namespace(dout)
        dw = numpy_fast.matmul(x.T, dout, out=self.weight.gradient_out()) if self.fused else None
        if db is None:
            db = numpy_fast.sum_rows(dout, out=self.bias.gradient_out()) if self.fused else None
            db = xp.sum(dout, axis=0) if db is None else db
        dw = x.T @ dout if dw is None else dw
        l1w, l2w, l1b, l2b = self.regularizers
        if l1w:
            dw = dw + l1w * _book_sign(xp, w)
        if l2w:
            dw = dw + (2.0 * l2w) * w
        if l1b:
            db = db + l1b * _book_sign(xp, b)
        if l2b:
            db = db + (2.0 * l2b) * b
        self.weight.accumulate(dw)
        self.bias.accumulate(db)
        return dout @ w.T if self.input_grad else None

    def _reject_gradient(self, dout: Array, x: Array, w: Array) -> None:
        """Raise before any ``.grad`` changes: dL/dy must match the last forward's output."""
        name = f"{self._name()}.backward"
        check_array(name, dout, "dout")
        if tuple(dout.shape) != (x.shape[0], self.n_out):
            raise ShapeError(
                f"{name}: expected dout of shape {(x.shape[0], self.n_out)} (the last output's), "
                f"got {tuple(dout.shape)}"
            )
        check_like(name, dout, w, "dout")

    def regularization_loss(self) -> Any:
        l1w, l2w, l1b, l2b = self.regularizers
        if not any(self.regularizers):
            return 0.0
        xp = backend.namespace(self.weight.value)
        w, b = self.weight.value, self.bias.value
        return l1w * xp.sum(xp.abs(w)) + l2w * xp.sum(w * w) + l1b * xp.sum(xp.abs(b)) + l2b * xp.sum(b * b)

    def output_width(self) -> int | None:
        return self.n_out

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"n_in": self.n_in, "n_out": self.n_out, "init": self.init}
        names = (
            "weight_regularizer_l1",
            "weight_regularizer_l2",
            "bias_regularizer_l1",
            "bias_regularizer_l2",
        )
        config.update({k: v for k, v in zip(names, self.regularizers, strict=True) if v})
        return config

    def __repr__(self) -> str:
        return self._name()


def _book_sign(xp: Any, w: Array) -> Array:
    """The NNFS book's dL1/dw: +1 where w >= 0, -1 where w < 0 (not sign(), which is 0 at 0)."""
    return xp.where(w < 0, -1.0, xp.ones_like(w))

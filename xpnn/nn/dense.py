"""Dense: the fully connected layer ``y = x @ weight + bias`` (:func:`xpnn.functional.linear`)
with the NNFS book's regularizers."""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.autograd.function import Function
from xpnn.checks import (
    check_array,
    check_count,
    check_flag,
    check_floating,
    check_like,
    check_number,
    check_seed,
)
from xpnn.errors import ArgumentError, ShapeError
from xpnn.functional.linear import Linear, LinearReLU, Penalty, penalty_gradient
from xpnn.nn import init
from xpnn.nn.activations import ReLU
from xpnn.nn.init import INITS, initial_weights, named
from xpnn.nn.layers import Layer
from xpnn.nn.module import Module
from xpnn.nn.parameter import Parameter

Array = Any
_REGULARIZERS = (
    "weight_regularizer_l1",
    "weight_regularizer_l2",
    "bias_regularizer_l1",
    "bias_regularizer_l2",
)


class Dense(Layer):
    """Fully connected layer ``y = x @ weight + bias``: ``(..., n_in) -> (..., n_out)`` (torch's
    Linear convention for the input), weight (n_in, n_out) (the book's; torch's transposed),
    bias (n_out,), or None with ``bias=False``.

    ``init``: ``"glorot_uniform"`` (default), ``"he_normal"``, ``"he_uniform"`` or ``"nnfs"``
    (the book's ``0.01 * randn``). The NNFS chapter-14 regularizers add
    ``l1 * sum|w| + l2 * sum(w**2)`` (and likewise for the bias) to the loss via
    :meth:`penalty` (a 0-d Tensor with the book's gradient); a plain-array
    ``backward`` adds their gradients itself, as the book's does.

    ``fused`` (on by default): NumPy adds the bias in place into the fresh product and writes
    the weight and bias gradients straight into the optimizer's flat gradient buffer: the same
    numbers (:mod:`xpnn.functional.linear`).
    """

    function = Linear

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
        bias: bool = True,
        seed: int | None = None,
    ) -> None:
        self.n_in, self.n_out = check_count("Dense", "n_in", n_in), check_count("Dense", "n_out", n_out)
        self.init = init
        strengths = (weight_regularizer_l1, weight_regularizer_l2, bias_regularizer_l1, bias_regularizer_l2)
        self.regularizers = tuple(
            check_number("Dense", k, v, low=0.0) for k, v in zip(_REGULARIZERS, strengths, strict=True)
        )
        if init not in INITS:
            raise ArgumentError(f"Dense: unknown init {init!r}; expected one of {', '.join(INITS)}")
        self.weight = Parameter(None, "weight")
        self.bias = Parameter(None, "bias") if check_flag("Dense", "bias", bias) else None
        rng = backend.host_rng(check_seed("Dense", seed))
        with named(f"Dense({self.n_in} -> {self.n_out})"):
            self.reset_parameters(rng)

    def reset_parameters(self, rng: Any) -> None:
        old = self.weight.value
        shape = (self.n_in, self.n_out)
        weight = initial_weights(rng, self.init, shape, fan_in=self.n_in, fan_out=self.n_out)
        bias = init.zeros((self.n_out,))
        if old is not None:  # keep the parameters' backend, device AND dtype (float64 stays)
            weight, bias = backend.move_like(weight, old), backend.move_like(bias, old)
        self.weight.value, self.weight.grad = weight, None
        if self.bias is not None:
            self.bias.value, self.bias.grad = bias, None

    def inputs(self) -> tuple[Parameter | None, ...]:
        return (self.weight, self.bias)

    def options(self, x: Array) -> dict[str, Any]:
        w = self.weight.value
        ok = type(x) is type(w) and x.dtype == w.dtype and x.ndim >= 1 and x.shape[-1] == self.n_in
        if not ok or backend.device_of(x) != backend.device_of(w):
            self._reject(x, w)
        return {"fused": self.fused}

    def _reject(self, x: Array, w: Array) -> None:
        """Raise the specific error for an input the fast check in ``options`` refused."""
        name = repr(self)
        check_array(name, x)
        if x.ndim < 1 or x.shape[-1] != self.n_in:
            raise ShapeError(f"{name}: expected input of shape (batch, {self.n_in}), got {tuple(x.shape)}")
        check_floating(name, x)
        check_like(name, x, w)

    def fused_with(self, following: Module, reader: Module | None) -> type[Function] | None:
        """This layer and a ReLU after it as one node (:class:`~xpnn.functional.linear.LinearReLU`:
        one pass for the bias and the maximum, one for the mask and the bias gradient), where
        both are ``fused``, neither is a subclass or patched per instance, and a Dense reads the
        ReLU's output: its backward reads the mask from that output, which a Dense never
        changes or hands on (a view handed to the caller, or a user's layer, could change it)."""
        plain = type(self) is Dense and type(following) is ReLU and self.fused and following.fused
        if not plain or type(reader) is not Dense or "forward" in vars(self) or "forward" in vars(following):
            return None
        return LinearReLU

    def penalty(self) -> Any:
        """``l1 * sum|w| + l2 * sum(w**2)`` (and the bias's) as a 0-d Tensor; 0.0 when none
        (``regularization_loss()`` sums it over a model, each layer once)."""
        l1w, l2w, l1b, l2b = self.regularizers
        if not any(self.regularizers):
            return 0.0
        total = Penalty.apply(self.weight, l1=l1w, l2=l2w)
        if (l1b or l2b) and self.bias is not None:
            total = total + Penalty.apply(self.bias, l1=l1b, l2=l2b)
        return total

    def regularization_loss(self, seen: set[int] | None = None) -> Any:
        """Its own :meth:`penalty`: a Dense holds no sub-modules, so the tree walk of
        :meth:`Module.regularization_loss` is skipped (a Sequential asks every layer, every step)."""
        return self.penalty()

    def add_penalty_gradients(self) -> None:
        l1w, l2w, l1b, l2b = self.regularizers
        if l1w or l2w:
            self.weight.accumulate(penalty_gradient(self.weight.value, l1w, l2w))
        if (l1b or l2b) and self.bias is not None:
            self.bias.accumulate(penalty_gradient(self.bias.value, l1b, l2b))

    def output_width(self) -> int | None:
        return self.n_out

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"n_in": self.n_in, "n_out": self.n_out, "init": self.init}
        config.update({k: v for k, v in zip(_REGULARIZERS, self.regularizers, strict=True) if v})
        if self.bias is None:
            config["bias"] = False
        return config

    def __repr__(self) -> str:
        return f"Dense({self.n_in} -> {self.n_out})"

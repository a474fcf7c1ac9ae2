"""Layer: a built-in Module whose call is ONE differentiable function (its backward by hand).

Called on a Tensor (``layer(x)``, or inside a Module or Sequential), a layer records one node
of the tape holding that call's saved arrays, so a layer used twice gets both gradients.
Called on a plain array, ``forward(x) -> y`` keeps what its ``backward(dy) -> dx`` needs, as
the NNFS book's layers do: ``backward`` adds the parameters' gradients into ``.grad`` and
returns dL/dx for that last forward. Every numeric line is in :mod:`xpnn.functional`.

A subclass names its ``function``, lists the tensors it passes after ``x`` (``inputs``) and
checks ``x``, returning the function's keyword options (``options``).
"""

from __future__ import annotations

import math
from typing import Any

from xpnn import backend
from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.autograd.tensor import Tensor, record
from xpnn.checks import ArrayKind, check_array, check_dout, check_floating, check_number, check_seed, kind_of
from xpnn.errors import ArgumentError, CheckpointError, ForwardFirstError, ShapeError
from xpnn.functional import concat
from xpnn.functional.dropout import Dropout as DropoutFunction
from xpnn.nn.module import Module
from xpnn.nn.parameter import Parameter

Array = Any


class _Call:
    """What a layer's last plain-array ``forward`` left for its ``backward``: the node (None for
    an identity, Dropout in eval mode), the parameters, and the output's kind (``dout``'s)."""

    __slots__ = ("ctx", "inputs", "out")

    def __init__(self, ctx: Node | None, inputs: tuple[Parameter | None, ...], out: ArrayKind) -> None:
        self.ctx, self.inputs, self.out = ctx, inputs, out


class Layer(Module):
    """Base class of the built-in layers (see the module docstring).

    ``input_grad``: whether a plain-array ``backward`` computes dL/dx (a whole GEMM for Dense).
    ``fused``: the layer's fast path (NumPy kernels, numba loops) beside its plain equation;
    ``fused = False`` on the instance or the class always runs the plain code.
    """

    function: type[Function] | None = None
    fused: bool = True
    input_grad: bool = True
    _book_style = False  # forward and backward of its own, on arrays (see _book_style_call)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._book_style = cls.function is None and cls.backward is not Layer.backward

    def inputs(self) -> tuple[Parameter | None, ...]:
        """The tensors passed to ``function`` after ``x`` (its parameters), None where absent."""
        return ()

    def options(self, x: Array) -> dict[str, Any]:
        """Check ``x`` (named errors) and return ``function``'s keyword options for it."""
        return {}

    def __call__(self, x: Any) -> Any:  # type: ignore[override]
        if self._book_style:
            return _book_style_call(self, x)
        return self.forward(x if isinstance(x, Tensor) else Tensor(x))

    def fused_with(self, following: Module, reader: Module | None) -> type[Function] | None:
        """The function computing ``following(self(x))`` as one node, called with this layer's
        :meth:`inputs` and :meth:`options` (Dense then ReLU: LinearReLU), else None. A
        Sequential asks each adjacent pair; ``reader`` is the module that reads the pair's
        output (None: the caller does)."""
        return None

    def after_forward(self, options: dict[str, Any]) -> None:
        """Called after each forward that ran (BatchNorm keeps its new running statistics)."""

    def eval_parts(self, x: Array, options: dict[str, Any]) -> list[slice] | None:
        """In eval mode, the batch slices ``function`` runs on one after the other (so a large
        intermediate such as im2col's columns stays bounded when predicting on a large array);
        None: the whole batch at once."""
        return None

    def forward(self, x: Any) -> Any:
        """``y`` for ``x``: on a Tensor, recorded as ONE node with the layer's hand-written
        backward; on a plain array, what ``backward`` needs is kept on the layer. In eval mode a
        layer's :meth:`eval_parts` may split the batch (the outputs joined along it)."""
        assert self.function is not None, f"{type(self).__name__} names no function"
        options = self.options(x.value if isinstance(x, Tensor) else x)
        parts = None if self.training else self.eval_parts(x.value if isinstance(x, Tensor) else x, options)
        if parts is None or len(parts) == 1:
            out = self._apply(x, options)
        else:
            outputs = [self._apply(x[part, ...], options) for part in parts]
            out = (
                concat(outputs, axis=0)
                if isinstance(x, Tensor)
                else backend.namespace(x).concat(outputs, axis=0)
            )
        self.after_forward(options)
        return out

    def _apply(self, x: Any, options: dict[str, Any]) -> Any:
        function = self.function
        assert function is not None
        if isinstance(x, Tensor):
            return function.call(x, self.inputs(), options)
        params = self.inputs()
        ctx = function.context()
        out = function.forward(ctx, x, *(None if p is None else p.value for p in params), **options)
        ctx.inputs = (None, *params)
        self._call: _Call | None = _Call(ctx, params, kind_of(out))
        return out

    def backward(self, dout: Array) -> Array | None:
        """dL/dx for the last plain-array ``forward``; parameter gradients added into ``.grad``."""
        call = vars(self).get("_call")
        if call is None:
            raise ForwardFirstError(f"{self!r}.backward: called before forward (nothing to differentiate)")
        self.check_dout(dout, call.out)
        call.ctx.needs = (self.input_grad, *(p is not None and p.requires_grad for p in call.inputs))
        grads = self.function.backward(call.ctx, dout)  # type: ignore[union-attr]
        for p, grad in zip(call.inputs, grads[1:], strict=False):
            if p is not None and grad is not None:
                p.accumulate(grad)
        self.add_penalty_gradients()
        return grads[0] if self.input_grad else None

    def check_dout(self, dout: Array, expected: ArrayKind) -> None:
        """Raise before anything changes unless ``dout`` is of the last output's shape,
        namespace, device and dtype (:func:`xpnn.checks.check_dout`)."""
        check_dout(lambda: f"{self!r}.backward", dout, expected)

    def add_penalty_gradients(self) -> None:
        """Add the gradient of this layer's own L1/L2 penalty (the book adds it in backward)."""

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (used by checkpoints)."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def who(self) -> str:
        return repr(self)


def _book_style_call(layer: Layer, x: Any) -> Tensor:
    """A layer of your own written the NNFS book's way (``forward`` and ``backward`` on arrays,
    keeping its state on ``self``) as one node: its ``backward`` adds its parameters' gradients
    and returns dL/dx. Its state is its last call's, so use such a layer once per graph."""
    inp = x if isinstance(x, Tensor) else Tensor(x)
    out = layer.forward(inp.value)
    params = tuple(layer.parameters())

    def vjp(node: Node, g: Array) -> tuple[Array | None, ...]:
        layer.input_grad = node.needs[0]
        dx = layer.backward(g)
        return (dx if node.needs[0] else None, *(None for _ in params))

    return record(out, vjp, (inp, *params), None, type(layer).__name__)


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate`` and scale the
    rest by ``1 / (1 - rate)``; in eval mode, the identity.

    The mask is drawn on the device from the counters ``(seed, epoch, step)``, never from a
    stateful generator, so a resumed run draws exactly the masks of the uninterrupted one.
    Under data-parallel ``fit`` each rank draws its rows of the GLOBAL batch's mask (``share``:
    fit's batch shares, whose ``rows`` are this rank's ``(start, stop, n_global)``), so N ranks
    draw the one-process masks. A leading axis that is not the batch's (a transposed input)
    gets masks of its own per rank.
    """

    function = DropoutFunction

    def __init__(self, rate: float, *, seed: int | None = None) -> None:
        self.rate = check_number("Dropout", "rate", rate, low=0.0, high=1.0)
        if self.rate == 1.0:
            raise ArgumentError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.epoch = self.step = self.seed = 0
        self.share: Any = None  # set by data-parallel fit
        self.reset_parameters(backend.host_rng(check_seed("Dropout", seed)))

    def reset_parameters(self, rng: Any) -> None:
        self.seed = int(rng.integers(2**62))
        self.epoch = self.step = 0

    def forward(self, x: Any) -> Any:
        """Training mode: the mask applied and the survivors scaled; eval mode (or ``rate`` 0):
        ``x`` itself."""
        if not self.training or self.rate == 0.0:
            if not isinstance(x, Tensor):
                check_array("Dropout", x)
                self._call = _Call(None, (), kind_of(x))  # the identity: backward checks dout
            return x
        return super().forward(x)

    def options(self, x: Array) -> dict[str, Any]:
        check_floating("Dropout", x)
        key = (self.seed, self.epoch, self.step)
        self.step += 1
        if self.share is None:
            return {"rate": self.rate, "key": key}
        start, stop, total = self.share.rows
        size = math.prod(x.shape)
        if stop > start and size % (stop - start) == 0:  # batch-major: sample i's elements follow i - 1's
            per_sample = size // (stop - start)
            return {"rate": self.rate, "key": key, "offset": start * per_sample, "total": total * per_sample}
        return {"rate": self.rate, "key": (*key, self.share.communicator.rank + 1)}

    def backward(self, dout: Array) -> Array | None:
        """dL/dx: ``dout`` through the last forward's mask (the identity in eval mode)."""
        call = vars(self).get("_call")
        if call is not None and call.ctx is None:  # the identity of eval mode
            self.check_dout(dout, call.out)
            return dout
        return super().backward(dout)

    def counters(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "step": self.step}

    def load_counters(self, counters: dict[str, int]) -> None:
        unknown = sorted(set(counters) - {"seed", "epoch", "step"})
        if unknown:
            raise CheckpointError(f"Dropout: unknown counters {unknown}; expected seed, epoch, step")
        for key, value in counters.items():
            setattr(self, key, int(value))

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.step = int(epoch), 0

    def config(self) -> dict[str, Any]:
        return {"rate": self.rate}


class Flatten(Layer):
    """Reshape ``(batch, *dims)`` to ``(batch, prod(dims))`` (e.g. 28x28 images to 784)."""

    def forward(self, x: Any) -> Any:
        """``x`` reshaped to ``(batch, prod(dims))``."""
        value = x.value if isinstance(x, Tensor) else x
        check_array("Flatten", value)
        if value.ndim < 1:
            raise ShapeError(f"Flatten: expected input of shape (batch, ...), got {tuple(value.shape)}")
        shape = (value.shape[0], math.prod(value.shape[1:]))
        if isinstance(x, Tensor):
            return x.reshape(shape)
        out = backend.namespace(value).reshape(value, shape)
        self._call_shape, self._out = tuple(value.shape), kind_of(out)
        return out

    def backward(self, dout: Array) -> Array:
        """``dout`` reshaped back to the last input's shape."""
        shape = vars(self).get("_call_shape")
        if shape is None:
            raise ForwardFirstError("Flatten().backward: called before forward (nothing to differentiate)")
        self.check_dout(dout, self._out)
        return backend.namespace(dout).reshape(dout, shape)

"""Layers with explicit backprop: ``forward(x) -> y`` caches what ``backward(dy) -> dx`` needs.

Every numeric line uses the namespace of the arrays at hand (Array API standard).
``backward`` adds parameter gradients into ``Parameter.grad`` and returns dL/dx.
"""

from __future__ import annotations

from typing import Any

from xpnn import backend
from xpnn.errors import ArgumentError, CheckpointError, ForwardFirstError, ShapeError
from xpnn.nn.checks import (
    check_array,
    check_float_dtype,
    check_floating,
    check_number,
    check_seed,
)
from xpnn.nn.parameter import Parameter

Array = Any


class Layer:
    """Base class: a layer maps ``x -> y`` and ``dL/dy -> dL/dx``.

    ``input_grad`` is turned off by :class:`~xpnn.Sequential` for its first layer:
    no one needs dL/dx of the data, and for a Dense layer that is a whole GEMM.
    """

    training: bool = True
    input_grad: bool = True

    def forward(self, x: Array) -> Array:
        raise NotImplementedError

    def backward(self, dout: Array) -> Array | None:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return []

    def reset_parameters(self, rng: Any) -> None:
        """Draw fresh initial parameters from the host generator ``rng``."""

    def regularization_loss(self) -> Any:
        """The L1/L2 penalty this layer adds to the loss (0.0 when it has none)."""
        return 0.0

    def train(self, mode: bool = True) -> Layer:
        self.training = mode
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def buffers(self) -> dict[str, Array]:
        """Non-trained state saved in checkpoints and moved by :meth:`to` (BatchNorm's running
        statistics): ``{name: array}`` of the attributes named in ``buffer_names``."""
        return {name: getattr(self, name) for name in self.buffer_names}

    buffer_names: tuple[str, ...] = ()

    def counters(self) -> dict[str, int]:
        """Integer state saved in checkpoints (Dropout's mask counters); ``{}`` for most layers."""
        return {}

    def load_counters(self, counters: dict[str, int]) -> None:
        """Restore :meth:`counters` (a checkpoint's); only this layer's own names are accepted."""
        if counters:
            raise CheckpointError(f"{self!r}: has no counters, got {sorted(counters)}")

    def _cached(self, name: str) -> Array:
        """What ``forward`` saved for ``backward``; a named error when there was no forward."""
        value = getattr(self, name, None)
        if value is None:
            raise ForwardFirstError(f"{self!r}.backward: called before forward (nothing to differentiate)")
        return value

    def start_epoch(self, epoch: int) -> None:
        """Called by ``fit`` before each epoch (Dropout restarts its mask counter there)."""

    def output_width(self) -> int | None:
        """The number of output features where the layer fixes it (Dense: ``n_out``), else None."""
        return None

    def set_communicator(self, communicator: Any) -> None:
        """Data-parallel training hands each layer the communicator (None: one process). Only
        layers whose forward needs the global batch (BatchNorm's statistics) keep it."""

    def to(self, target: str | backend.Backend, *, dtype: str | None = None) -> Layer:
        """Move (and optionally cast) the parameters and buffers to a backend, e.g. ``"cupy"``."""
        resolved = backend.resolve(target) if isinstance(target, str) else target
        check_float_dtype(f"{self!r}.to", resolved.xp, dtype)

        def moved(value: Array) -> Array:
            kind = backend.dtype_name(value.dtype) if dtype is None else dtype
            return backend.from_host(backend.to_host(value), resolved, backend.dtype_named(resolved.xp, kind))

        for p in self.parameters():
            p.value = moved(p.value)
            p.grad = None
        for name, value in self.buffers().items():
            setattr(self, name, moved(value))
        return self

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (used by checkpoints)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate`` and scale the
    rest by ``1 / (1 - rate)``; in eval mode, the identity.

    The mask is drawn on the device from the counters ``(seed, epoch, step)``, never from a
    stateful generator, so a resumed run draws exactly the masks of the uninterrupted one.
    """

    def __init__(self, rate: float, *, seed: int | None = None) -> None:
        self.rate = check_number("Dropout", "rate", rate, low=0.0, high=1.0)
        if self.rate == 1.0:
            raise ArgumentError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.epoch = 0
        self.step = 0
        self.seed = 0
        self.reset_parameters(backend.host_rng(check_seed("Dropout", seed)))

    def reset_parameters(self, rng: Any) -> None:
        self.seed = int(rng.integers(2**62))
        self.epoch = self.step = 0

    def forward(self, x: Array) -> Array:
        if not self.training or self.rate == 0.0:
            self.mask = None
            return x
        check_floating("Dropout", x)
        keep = backend.uniform(x, tuple(x.shape), (self.seed, self.epoch, self.step)) >= self.rate
        self.step += 1
        xp = backend.namespace(x)
        self.mask = xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.rate))
        return x * self.mask

    def backward(self, dout: Array) -> Array:
        if not hasattr(self, "mask"):
            self._cached("mask")
        return dout if self.mask is None else dout * self.mask

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

    def forward(self, x: Array) -> Array:
        check_array("Flatten", x)
        if x.ndim < 1:
            raise ShapeError(f"Flatten: expected input of shape (batch, ...), got {tuple(x.shape)}")
        self.shape = tuple(x.shape)
        return backend.namespace(x).reshape(x, (x.shape[0], -1))

    def backward(self, dout: Array) -> Array:
        return backend.namespace(dout).reshape(dout, self._cached("shape"))

"""Sequential: a stack of layers with forward, backward and named parameters."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

from xpnn import backend
from xpnn.errors import NotALayerError
from xpnn.nn import serialization
from xpnn.nn.activations import ReLU
from xpnn.nn.checks import check_float_dtype, check_seed
from xpnn.nn.dense import Dense
from xpnn.nn.layers import Layer
from xpnn.nn.losses import Loss
from xpnn.nn.parameter import Parameter

Array = Any


class Sequential:
    """Layers applied in order; ``backward`` runs them in reverse.

    ``seed`` fixes the initial weights and dropout seeds, drawn on the host so every
    backend starts from identical numbers. The input gradient of the first layer is not
    computed (no one needs dL/dx of the data) unless ``backward(..., input_grad=True)``.
    """

    def __init__(self, layers: Iterable[Layer], *, seed: int | None = None) -> None:
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise NotALayerError(f"Sequential: item {i} is a {type(layer).__name__}, not an xpnn Layer")
        self.seed = check_seed("Sequential", seed)
        self.training = True
        self.loss: Loss | None = None  # set by fit(); evaluate() falls back to it
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int | None = None) -> None:
        """Re-draw every layer's initial parameters from one host generator seeded by ``seed``."""
        rng = backend.host_rng(seed)
        for layer in self.layers:
            layer.reset_parameters(rng)

    def forward(self, x: Array) -> Array:
        layers, i = self.layers, 0
        while i < len(layers):
            pair = _dense_relu(layers[i], layers[i + 1], layers[i + 2]) if i + 2 < len(layers) else None
            if pair is not None:
                x = pair[0].forward_relu(x)
                pair[1].cache_output(x)
                i += 2
            else:
                x = layers[i].forward(x)
                i += 1
        return x

    __call__ = forward

    def backward(self, dout: Array, *, input_grad: bool = False) -> Array | None:
        """Backpropagate ``dL/doutput``; fills every parameter's ``.grad`` (adding into it).

        Returns dL/dinput when ``input_grad`` is True, else None (saving the first
        layer's input-gradient GEMM).
        """
        for layer in self.layers:  # layers up to the first with parameters need no dL/dx
            layer.input_grad = input_grad
            if layer.parameters():
                break
        layers, i = self.layers, len(self.layers) - 1
        owned = False  # dout is a Dense layer's fresh input gradient: only this loop holds it
        while i >= 0:
            layer = layers[i]
            pair = _dense_relu(layers[i - 1], layer, layers[i + 1]) if 0 < i < len(layers) - 1 else None
            if pair is not None:
                dout = pair[0].backward_relu(dout, pair[1], owned)
                owned, i = True, i - 2
            else:
                dout = layer.backward(dout)
                owned, i = type(layer) is Dense and not _patched(layer), i - 1
            if dout is None:
                break
        return dout

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``("0.weight", p), ("0.bias", p), ...``: layer index and parameter name."""
        return [(f"{i}.{p.name}", p) for i, layer in enumerate(self.layers) for p in layer.parameters()]

    def buffers(self) -> dict[str, Array]:
        """``{"3.running_mean": array, ...}``: every layer's non-trained state, by layer index."""
        return dict(serialization.named_buffers(self.layers))

    def start_epoch(self, epoch: int) -> None:
        """Tell every layer that epoch ``epoch`` begins (fit calls it; Dropout resets its counter)."""
        for layer in self.layers:
            layer.start_epoch(epoch)

    def set_communicator(self, communicator: Any) -> None:
        """Hand every layer the data-parallel communicator (None: back to one process)."""
        for layer in self.layers:
            layer.set_communicator(communicator)

    def output_width(self) -> int | None:
        """The output width fixed by the last layer that fixes one (fit checks labels against it)."""
        for layer in reversed(self.layers):
            width = layer.output_width()
            if width is not None:
                return width
        return None

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def regularization_loss(self) -> Any:
        """Sum of the layers' L1/L2 penalties (0.0 when no layer has one)."""
        total: Any = 0.0
        for layer in self.layers:
            total = total + layer.regularization_loss()
        return total

    def train(self, mode: bool = True) -> Sequential:
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    def to(self, target: str, *, dtype: str | None = None) -> Sequential:
        """Move every parameter to backend ``target`` ("numpy", "cupy", "torch", ...), in place."""
        resolved = backend.resolve(target)
        check_float_dtype(f"Sequential({len(self.layers)} layers).to", resolved.xp, dtype)  # before any moves
        for layer in self.layers:
            layer.to(resolved, dtype=dtype)
        return self

    @property
    def backend(self) -> str:
        """The backend name of the parameters (``"numpy"`` for a model without any)."""
        params = self.parameters()
        return backend.backend_name(params[0].value) if params else "numpy"

    def summary(self) -> str:
        """A table of layers, output widths and parameter counts."""
        rows = [("#", "layer", "parameters")]
        total = 0
        for i, layer in enumerate(self.layers):
            count = sum(math.prod(p.value.shape) for p in layer.parameters())
            total += count
            rows.append((str(i), repr(layer), f"{count:,}"))
        widths = [max(len(row[k]) for row in rows) for k in range(3)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        params = self.parameters()
        dtype = backend.dtype_name(params[0].value.dtype) if params else "-"
        lines.append(f"total parameters: {total:,} ({dtype}, backend {self.backend})")
        return "\n".join(lines)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n])"

    # -- Keras-style conveniences: thin delegations to xpnn.train.loop and xpnn.train.checkpoint ------
    def fit(
        self,
        x: Array,
        y: Array,
        *,
        loss: Any,
        optimizer: Any,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Array, Array] | None = None,
        validation_split: float = 0.0,
        callbacks: Iterable[Any] = (),
        seed: int | None = None,
        verbose: int = 1,
        shuffle: bool = True,
        resume: str | os.PathLike[str] | None = None,
        communicator: Any = None,
    ) -> Any:
        """Train on ``(x, y)`` (Keras-style); returns a :class:`~xpnn.History`.

        ``x`` may be host NumPy, device arrays, or uint8 images (cast and scaled by 1/255 on
        the device). ``callbacks``: :class:`~xpnn.EarlyStopping`, :class:`~xpnn.ModelCheckpoint`
        or plain callables ``hook(epoch, logs)``; ``resume``: a training checkpoint to continue
        from. Metrics accumulate on the device and synchronise once per epoch.
        ``communicator`` (from :func:`xpnn.distributed.init`): data-parallel training, where
        ``batch_size`` is the global batch split across ranks (see :mod:`xpnn.distributed`).

        Every argument is checked before the first step (named ``XpnnError``s). ``epochs=0``
        returns an empty History. Integer ``x`` must be uint8 images (other integer dtypes are
        refused with ``DTypeError``: cast them). A NaN or infinite epoch loss stops training
        with ``NonFiniteLossError`` before callbacks (checkpoints) see the epoch.
        """
        from xpnn.train.loop import fit

        return fit(
            self,
            x,
            y,
            loss=loss,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            validation_split=validation_split,
            callbacks=callbacks,
            seed=seed,
            verbose=verbose,
            shuffle=shuffle,
            resume=resume,
            communicator=communicator,
        )

    def evaluate(
        self, x: Array, y: Array, *, loss: Any = None, batch_size: int = 256, communicator: Any = None
    ) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over ``(x, y)`` in eval mode (one host sync); the
        loss defaults to the one of the last ``fit``; ``communicator``: split across ranks."""
        from xpnn.train.evaluation import evaluate

        return evaluate(self, x, y, loss=loss, batch_size=batch_size, communicator=communicator)

    def predict(self, x: Array, *, batch_size: int = 256) -> Array:
        """Outputs for ``x`` in eval mode, as one array on the model's device."""
        from xpnn.train.evaluation import predict

        return predict(self, x, batch_size=batch_size)

    def save(self, path: str | os.PathLike[str], *, optimizer: Any = None) -> None:
        """Save the model (and an optimizer's state) atomically to an ``.npz``; see :func:`xpnn.load`."""
        save(self, path, optimizer=optimizer)


def _dense_relu(layer: Layer, nxt: Layer, after: Layer) -> tuple[Dense, ReLU] | None:
    """The pair where ``layer`` is a Dense layer and ``nxt`` a ReLU, both ``fused`` and none of
    the three patched per instance (a wrapped ``forward`` or ``backward`` is called, not
    bypassed): Sequential runs them as one (:meth:`Dense.forward_relu`, :meth:`Dense.backward_relu`).
    The ReLU's output is its backward mask, so only a Dense layer may read it next: a Dense
    never writes into its input nor hands it on (a Flatten view, a Dropout in eval mode or a
    user's layer could, and an in-place change would then change the gradient)."""
    if type(layer) is Dense and type(nxt) is ReLU and type(after) is Dense and layer.fused and nxt.fused:
        return None if _patched(layer) or _patched(nxt) or _patched(after) else (layer, nxt)
    return None


def _patched(layer: Layer) -> bool:
    return "forward" in layer.__dict__ or "backward" in layer.__dict__


def save(model: Sequential, path: str | os.PathLike[str], *, optimizer: Any = None) -> None:
    """Save ``model`` (and optionally an optimizer's state) atomically to an ``.npz`` file:
    data and a JSON header, never pickle; :func:`load` rebuilds it on any backend."""
    serialization.save(path, model, optimizer=optimizer)


def load(path: str | os.PathLike[str], *, backend: str = "numpy") -> Sequential:
    """Rebuild a saved model on ``backend`` (NumPy by default; any backend, whatever it was saved on)."""
    header, arrays, layers = serialization.read(path)
    model = Sequential(layers, seed=header.get("model_seed"))
    serialization.restore(model.layers, header, arrays)
    return model.to(backend) if backend != "numpy" else model

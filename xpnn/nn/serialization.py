"""A model's own saving and loading: architecture, parameters, buffers and counters as data.

The header holds a format version, the architecture (each layer's class name and
``config()``), each parameter's and buffer's name/shape/dtype, per-layer counters (dropout
seeds), and optionally an optimizer's ``state_dict`` and a training run's progress (written
by :mod:`xpnn.train.checkpoint`). Shuffling and dropout are pure functions of those seeds and
counters, so they are the whole random state. Every array is stored as a host NumPy array,
so a file written on CuPy loads on NumPy and vice versa. File I/O is :mod:`xpnn.backend.archive`'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Protocol

from xpnn import backend
from xpnn.backend import archive
from xpnn.errors import CheckpointError
from xpnn.nn.layers import Layer
from xpnn.nn.parameter import Parameter

HostArray = Any  # a host NumPy array, as read from the file


class Model(Protocol):
    """What saving needs of a model (:class:`~xpnn.Sequential` is one)."""

    layers: list[Layer]
    seed: int | None

    @property
    def backend(self) -> str: ...

    def named_parameters(self) -> list[tuple[str, Parameter]]: ...


class HasState(Protocol):
    """An optimizer, as saving sees it."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, saved: dict[str, Any]) -> None: ...


def architecture(layers: Sequence[Layer]) -> list[list[Any]]:
    """``[[class name, config], ...]`` in JSON form (tuples become lists)."""
    return json.loads(json.dumps([[type(layer).__name__, layer.config()] for layer in layers]))


def named_buffers(layers: Sequence[Layer]) -> list[tuple[str, Any]]:
    """``("3.running_mean", array), ...``: layer index and buffer name."""
    return [
        (f"{i}.{name}", value) for i, layer in enumerate(layers) for name, value in layer.buffers().items()
    ]


def save(
    path: str | os.PathLike[str],
    model: Model,
    *,
    optimizer: HasState | None = None,
    training: dict[str, Any] | None = None,
) -> None:
    """Save ``model`` (and optionally an optimizer's state and training progress) to ``path``."""
    arrays: dict[str, HostArray] = {}
    params, buffers = [], []
    for name, p in model.named_parameters():
        arrays[f"param/{name}"] = backend.to_host(p.value)
        params.append([name, list(p.shape), backend.dtype_name(p.dtype)])
    for name, value in named_buffers(model.layers):
        arrays[f"buffer/{name}"] = backend.to_host(value)
        buffers.append([name, list(value.shape), backend.dtype_name(value.dtype)])
    counters = {str(i): layer.counters() for i, layer in enumerate(model.layers)}
    header = {
        "format": archive.FORMAT,
        "version": archive.VERSION,
        "architecture": architecture(model.layers),
        "parameters": params,
        "buffers": buffers,
        "counters": {k: v for k, v in counters.items() if v},
        "model_seed": model.seed,
        "backend": model.backend,
        "optimizer": None
        if optimizer is None
        else archive.encode(optimizer.state_dict(), "optimizer", arrays),
        "training": training,
    }
    archive.write(path, header, arrays)


def _describe(entry: list[Any], shapes: list[tuple[int, ...]]) -> str:
    name, config = entry
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"{name}({args})" + (f" with parameter shapes {shapes}" if shapes else "")


def check_architecture(path: str, header: dict[str, Any], layers: Sequence[Layer]) -> None:
    """Raise :class:`CheckpointError` naming the first layer (or parameter shape) that differs."""
    saved, mine = header["architecture"], architecture(layers)
    saved_shapes: dict[int, list[tuple[int, ...]]] = {}
    for name, shape, _ in header["parameters"]:
        saved_shapes.setdefault(int(name.split(".")[0]), []).append(tuple(shape))
    for i in range(max(len(saved), len(mine))):
        ours = [p.shape for p in layers[i].parameters()] if i < len(mine) else []
        theirs = saved_shapes.get(i, [])
        if i >= len(saved) or i >= len(mine) or saved[i] != mine[i] or theirs != ours:
            there = _describe(saved[i], theirs) if i < len(saved) else "nothing (it has fewer layers)"
            here = _describe(mine[i], ours) if i < len(mine) else "nothing (it has fewer layers)"
            raise CheckpointError(
                f"{path}: architecture differs at layer {i}: the checkpoint has {there}, "
                f"the model has {here} "
                f"(checkpoint: {len(saved)} layers, model: {len(mine)})"
            )


def _layer_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    pending = [Layer]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def build_layers(path: str, header: dict[str, Any]) -> list[Layer]:
    """Fresh layers of the saved architecture (their values still the initial ones)."""
    classes = _layer_classes()
    layers = []
    for i, (name, config) in enumerate(header["architecture"]):
        if name not in classes:
            raise CheckpointError(f"{path}: layer {i} is a {name}, which is not a known xpnn Layer class")
        layers.append(classes[name](**config))
    return layers


def fill(layers: Sequence[Layer], header: dict[str, Any], arrays: dict[str, HostArray]) -> None:
    """Copy saved parameters and buffers (onto each one's backend and dtype) and layer counters."""
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            p.value = backend.assign(p.value, backend.move_like(arrays[f"param/{i}.{p.name}"], p.value))
            p.grad = None
        for name, value in layer.buffers().items():
            saved = _saved_buffer(arrays, i, layer, name, value)
            setattr(layer, name, backend.assign(value, backend.move_like(saved, value)))
    for index, counters in header.get("counters", {}).items():
        layers[int(index)].load_counters({key: int(value) for key, value in counters.items()})


def _saved_buffer(arrays: dict[str, HostArray], i: int, layer: Layer, name: str, value: Any) -> HostArray:
    """The saved buffer ``i.name``; ``CheckpointError`` when it is missing or of another shape."""
    saved = arrays.get(f"buffer/{i}.{name}")
    if saved is None or tuple(saved.shape) != tuple(value.shape):
        got = "nothing" if saved is None else f"shape {tuple(saved.shape)}"
        raise CheckpointError(
            f"layer {i} ({layer!r}): buffer {name!r} expected shape {tuple(value.shape)}, "
            f"the checkpoint has {got}"
        )
    return saved


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, HostArray], list[Layer]]:
    """The header, the arrays and fresh layers of the saved architecture (not yet filled)."""
    path = os.fspath(path)
    header, arrays = archive.read(path)
    return header, arrays, build_layers(path, header)


def restore(layers: Sequence[Layer], header: dict[str, Any], arrays: dict[str, HostArray]) -> None:
    """Give freshly built layers the saved values as host NumPy arrays of the saved dtypes."""
    dtypes = {name: dtype for name, _, dtype in header["parameters"]}
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            p.value = arrays[f"param/{i}.{p.name}"].astype(dtypes[f"{i}.{p.name}"])
    fill(layers, header, arrays)


def load_into(
    path: str | os.PathLike[str], model: Model, optimizer: HasState | None = None
) -> dict[str, Any] | None:
    """Load a saved file into an existing model (and optimizer), checking the architecture first.

    Returns the training progress saved with it (``None`` for a plain ``model.save``).
    """
    path = os.fspath(path)
    header, arrays = archive.read(path)
    check_architecture(path, header, model.layers)
    if optimizer is not None:
        if header.get("optimizer") is None:
            raise CheckpointError(f"{path}: holds no optimizer state (saved with model.save, not during fit)")
        optimizer.load_state_dict(archive.decode(header["optimizer"], arrays))
    fill(model.layers, header, arrays)
    return header.get("training")

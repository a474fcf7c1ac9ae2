"""A model's own saving and loading: architecture, parameters, buffers and counters as data.

The header holds a format version, the architecture (each layer's class name and
``config()``), each parameter's and buffer's name/shape/dtype, per-layer counters (dropout
seeds), and optionally an optimizer's ``state_dict`` and a training run's progress (written
by :mod:`xpnn.train.checkpoint`). Shuffling and dropout are pure functions of those seeds and
counters, so they are the whole random state. Every array is stored as a host NumPy array,
so a file written on CuPy loads on NumPy and vice versa. File I/O is :mod:`xpnn.backend.archive`'s.

Loading trusts nothing in the file: :mod:`xpnn.nn.file_checks` checks the header and every
array's shape and dtype (from the ``.npy`` headers) first, a layer built from the file may
draw initial weights only as large as the file's arrays for it, only the entries the
architecture names are read, and only then is anything changed.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from xpnn import backend
from xpnn.backend import archive
from xpnn.backend.archive import Archive
from xpnn.errors import CheckpointError, XpnnError
from xpnn.nn import init
from xpnn.nn.file_checks import architecture, check_architecture, check_arrays, check_header, expected_entries
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


def _layer_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    pending = [Layer]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def _saved_elements(archive: Archive, index: int) -> int:
    """How many numbers the file really holds for layer ``index`` (its .npy headers, each
    already checked against its zip member's size)."""
    prefixes = (f"param/{index}.", f"buffer/{index}.")
    return sum(math.prod(e.shape) for name, e in archive.entries.items() if name.startswith(prefixes))


def _build_one(path: str, index: int, name: str, config: dict[str, Any], archive: Archive) -> Layer:
    classes = _layer_classes()
    if name not in classes:
        raise CheckpointError(f"{path}: layer {index} is a {name}, which is not a known xpnn Layer class")
    accepted = inspect.signature(classes[name]).parameters
    unknown = sorted(set(config) - set(accepted))
    if unknown or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        raise CheckpointError(f"{path}: layer {index} ({name}) has config keys {unknown} it does not take")
    try:  # the layer may draw initial weights only as large as what the file holds for it
        with init.size_limit(_saved_elements(archive, index)):
            return classes[name](**config)
    except (XpnnError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: layer {index} cannot be built as {name}({config}): {error}") from None


def build_layers(path: str, archive: Archive) -> list[Layer]:
    """Fresh layers of the saved architecture (their values still the initial ones)."""
    return [
        _build_one(path, i, name, config, archive)
        for i, (name, config) in enumerate(archive.header["architecture"])
    ]


def read_arrays(archive: Archive, layers: Sequence[Layer]) -> dict[str, HostArray]:
    """Read exactly the entries the architecture names (after :func:`check_arrays`)."""
    return {name: archive.array(name) for name in expected_entries(layers)}


def fill(layers: Sequence[Layer], header: dict[str, Any], arrays: dict[str, HostArray]) -> None:
    """Copy saved parameters and buffers (onto each one's backend and dtype) and layer counters."""
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            p.value = backend.assign(p.value, backend.move_like(arrays[f"param/{i}.{p.name}"], p.value))
            p.grad = None
        for name, value in layer.buffers().items():
            setattr(
                layer, name, backend.assign(value, backend.move_like(arrays[f"buffer/{i}.{name}"], value))
            )
    for index, counters in header.get("counters", {}).items():
        layers[int(index)].load_counters({key: int(value) for key, value in counters.items()})


def open_checked(path: str | os.PathLike[str]) -> Archive:
    """The file's archive with its header checked (format, version, the model's entries)."""
    opened = archive.read(path)
    check_header(opened.path, opened.header)
    return opened


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, HostArray], list[Layer]]:
    """The header, the arrays and fresh layers of the saved architecture (not yet filled);
    every size is checked against the file before anything is allocated for it."""
    opened = open_checked(path)
    layers = build_layers(opened.path, opened)
    check_arrays(opened.path, opened, layers)
    return opened.header, read_arrays(opened, layers), layers


def restore(layers: Sequence[Layer], header: dict[str, Any], arrays: dict[str, HostArray]) -> None:
    """Give freshly built layers the saved values as host NumPy arrays of the saved dtypes."""
    for i, layer in enumerate(layers):
        for p in layer.parameters():
            p.value = arrays[f"param/{i}.{p.name}"]
        for name, value in layer.buffers().items():  # noqa: B007  # the file's dtype, not the fresh one's
            setattr(layer, name, arrays[f"buffer/{i}.{name}"])
    for index, counters in header.get("counters", {}).items():
        layers[int(index)].load_counters({key: int(value) for key, value in counters.items()})


def _load_optimizer(path: str, optimizer: HasState, state: Any) -> None:
    """``optimizer.load_state_dict(state)``, or a :class:`CheckpointError` with it unchanged."""
    before = optimizer.state_dict()
    try:
        optimizer.load_state_dict(state)
    except Exception as error:
        optimizer.load_state_dict(before)  # whatever it may have applied before refusing
        raise CheckpointError(f"{path}: the saved optimizer state does not fit: {error}") from None


def load_into(
    path: str | os.PathLike[str],
    model: Model,
    optimizer: HasState | None = None,
    check_training: Callable[[Any], Any] | None = None,
) -> dict[str, Any] | None:
    """Load a saved file into an existing model (and optimizer). Everything is checked first
    (architecture, every array's shape and dtype, counters, ``check_training`` on the saved
    progress) and read; only then is anything changed. Returns the saved training progress
    (``None`` for a plain ``model.save``)."""
    opened = open_checked(path)
    path, header = opened.path, opened.header
    check_architecture(path, opened, model.layers)
    check_arrays(path, opened, model.layers)
    if check_training is not None:
        check_training(header.get("training"))
    state = None
    if optimizer is not None:
        if header.get("optimizer") is None:
            raise CheckpointError(f"{path}: holds no optimizer state (saved with model.save, not during fit)")
        state = archive.decode(header["optimizer"], opened)
    arrays = read_arrays(opened, model.layers)
    if optimizer is not None:
        _load_optimizer(path, optimizer, state)
    fill(model.layers, header, arrays)
    return header.get("training")

"""A model's own saving and loading: architecture, parameters, buffers and counters as data.

The header holds a format version, the architecture (each layer's class name and
``config()``), each parameter's and buffer's name/shape/dtype, per-layer counters (dropout
seeds), and optionally an optimizer's ``state_dict`` and a training run's progress (written
by :mod:`xpnn.train.checkpoint`). Shuffling and dropout are pure functions of those seeds and
counters, so they are the whole random state. Every array is stored as a host NumPy array,
so a file written on CuPy loads on NumPy and vice versa. File I/O is :mod:`xpnn.backend.archive`'s.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from xpnn import backend
from xpnn.backend import archive
from xpnn.backend.archive import Archive
from xpnn.errors import CheckpointError, XpnnError
from xpnn.nn import init
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


def check_architecture(path: str, opened: Archive, layers: Sequence[Layer]) -> None:
    """Raise :class:`CheckpointError` naming the first layer (or parameter shape) that differs;
    the saved shapes are those of the arrays in the file."""
    saved, mine = opened.header["architecture"], architecture(layers)
    for i in range(max(len(saved), len(mine))):
        ours = [tuple(p.shape) for p in layers[i].parameters()] if i < len(mine) else []
        theirs = [e.shape for n, e in opened.entries.items() if n.startswith(f"param/{i}.")]
        if i >= len(saved) or i >= len(mine) or saved[i] != mine[i] or theirs != ours:
            there = _describe(saved[i], theirs) if i < len(saved) else "nothing (it has fewer layers)"
            here = _describe(mine[i], ours) if i < len(mine) else "nothing (it has fewer layers)"
            raise CheckpointError(
                f"{path}: architecture differs at layer {i}: the checkpoint has {there}, "
                f"the model has {here} (checkpoint: {len(saved)} layers, model: {len(mine)})"
            )


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


def check_header(path: str, header: dict[str, Any]) -> None:
    """The model part of the header: each entry of the type :func:`save` writes."""
    architecture = header.get("architecture")
    if not isinstance(architecture, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], dict)
        for e in architecture
    ):
        raise CheckpointError(f"{path}: header 'architecture' must be a list of [class name, config] pairs")
    for key in ("parameters", "buffers"):
        if not isinstance(header.get(key, []), list):
            raise CheckpointError(f"{path}: header {key!r} must be a list, got {type(header[key]).__name__}")
    counters = header.get("counters", {})
    if not isinstance(counters, dict) or not all(
        isinstance(c, dict) and all(_is_int(v) for v in c.values()) for c in counters.values()
    ):
        raise CheckpointError(f"{path}: header 'counters' must map layer indices to {{name: integer}}")
    if header.get("model_seed") is not None and not _is_int(header["model_seed"]):
        raise CheckpointError(
            f"{path}: header 'model_seed' must be an integer >= 0 or null, got {header['model_seed']!r:.60}"
        )
    for key, kind in (("optimizer", dict), ("training", dict)):
        value = header.get(key)
        if value is not None and not (isinstance(value, kind) and not isinstance(value, bool)):
            raise CheckpointError(
                f"{path}: header {key!r} must be a {kind.__name__} or null, got {value!r:.60}"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _expected_entries(layers: Sequence[Layer]) -> dict[str, tuple[int, ...]]:
    """Every array the architecture names: ``param/{i}.{name}`` and ``buffer/{i}.{name}``."""
    expected = {}
    for i, layer in enumerate(layers):
        expected.update({f"param/{i}.{p.name}": tuple(p.value.shape) for p in layer.parameters()})
        expected.update({f"buffer/{i}.{k}": tuple(v.shape) for k, v in layer.buffers().items()})
    return expected


def check_arrays(path: str, archive: Archive, layers: Sequence[Layer]) -> None:
    """Every parameter and buffer of ``layers`` is in the file with the layer's shape and a float
    dtype; no other ``param/`` or ``buffer/`` entry is; the counters are the layers' own."""
    expected = _expected_entries(layers)
    for name, shape in expected.items():
        entry = archive.entries.get(name)
        if entry is None:
            raise CheckpointError(f"{path}: the array {name!r} is missing")
        if entry.shape != shape:
            raise CheckpointError(f"{path}: {name!r} has shape {entry.shape}, the layer's is {shape}")
        if entry.dtype.kind != "f" or entry.dtype.itemsize not in (4, 8):
            raise CheckpointError(f"{path}: {name!r} has dtype {entry.dtype}, expected float32 or float64")
    stray = sorted(n for n in archive.entries if n.startswith(("param/", "buffer/")) and n not in expected)
    if stray:
        raise CheckpointError(f"{path}: arrays {stray[:5]} belong to no parameter or buffer of the model")
    for index, counters in archive.header.get("counters", {}).items():
        layer = layers[int(index)] if index.isdigit() and int(index) < len(layers) else None
        own = set() if layer is None else set(layer.counters())
        if layer is None or not set(counters) <= own:
            raise CheckpointError(
                f"{path}: counters {sorted(counters)} for layer {index}, which has counters {sorted(own)}"
            )


def read_arrays(archive: Archive, layers: Sequence[Layer]) -> dict[str, HostArray]:
    """Read exactly the entries the architecture names (after :func:`check_arrays`)."""
    return {name: archive.array(name) for name in _expected_entries(layers)}


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

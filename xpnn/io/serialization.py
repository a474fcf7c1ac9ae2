"""A model's own saving and loading: architecture, parameters, buffers and counters as data.

The header holds a format version, the model's class (``kind``), a Sequential's
architecture (each layer's class name and ``config()``), each parameter's and buffer's
dotted name/shape/dtype, per-module counters (dropout seeds), and optionally an optimizer's
``state_dict`` and a training run's progress (written by :mod:`xpnn.train.checkpoint`).
Shuffling and dropout are pure functions of those seeds and counters, so they are the whole
random state. Every array is stored as a host NumPy array,
so a file written on CuPy loads on NumPy and vice versa. File I/O is :mod:`xpnn.io.archive`'s.

Loading trusts nothing in the file: :mod:`xpnn.io.file_checks` checks the header and every
array's shape and dtype (from the ``.npy`` headers) first, a layer built from the file may
draw initial weights only as large as the file's arrays for it, only the entries the
architecture names are read, and only then is anything changed.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from typing import Any, Protocol

from xpnn import backend
from xpnn.errors import CheckpointError, XpnnError
from xpnn.io import archive
from xpnn.io.archive import Archive
from xpnn.io.file_checks import (
    architecture,
    check_architecture,
    check_arrays,
    check_header,
    check_values,
    expected_entries,
    is_builtin,
    is_builtin_sequential,
    nonnegative_names,
)
from xpnn.nn import init
from xpnn.nn.layers import Layer

HostArray = Any  # a host NumPy array, as read from the file


Model = Any  # an xpnn Module (a Sequential's file also records its architecture)


class HasState(Protocol):
    """An optimizer, as saving sees it."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, saved: dict[str, Any]) -> None: ...


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
    for name, value in model.named_buffers():
        arrays[f"buffer/{name}"] = backend.to_host(value)
        buffers.append([name, list(value.shape), backend.dtype_name(value.dtype)])
    counters = {name: module.counters() for name, module in model.named_modules()}
    sequential = is_builtin_sequential(model)  # a user's class is only ever loaded into an instance
    header = {
        "format": archive.FORMAT,
        "version": archive.VERSION,
        "kind": "Sequential" if sequential else type(model).__name__,
        "architecture": architecture(model.layers) if sequential else None,
        "parameters": params,
        "buffers": buffers,
        "counters": {k: v for k, v in counters.items() if v},
        "model_seed": model.seed if sequential else None,  # what a rebuilt Sequential is built with
        "backend": model.backend,
        "optimizer": None
        if optimizer is None
        else archive.encode(optimizer.state_dict(), "optimizer", arrays),
        "training": training,
    }
    archive.write(path, header, arrays)


def _layer_classes() -> dict[str, type]:
    """The built-in layer classes by name (only these are rebuilt from a file: never a user's
    subclass of Layer, which a file naming it would otherwise construct)."""
    found: dict[str, type] = {}
    pending: list[type] = [Layer]
    while pending:
        cls = pending.pop()
        if is_builtin(cls):
            found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def _saved_elements(archive: Archive, index: int) -> int:
    """How many numbers the file really holds for layer ``index`` (its .npy headers, each
    already checked against its zip member's size)."""
    prefixes = (f"param/{index}.", f"buffer/{index}.")
    return sum(math.prod(e.shape) for name, e in archive.entries.items() if name.startswith(prefixes))


def _build_one(path: str, index: int, name: str, config: dict[str, Any] | None, elements: int) -> Layer:
    classes = _layer_classes()
    if name not in classes or config is None:
        what = "a class of your own" if config is None else "which is not a known xpnn Layer class"
        raise CheckpointError(
            f"{path}: layer {index} is a {name}, {what} (nothing named in a file is imported or "
            "built): build the model yourself and load the weights into it with xpnn.load(path, into=model)"
        )
    accepted = inspect.signature(classes[name]).parameters
    unknown = sorted(set(config) - set(accepted))
    if unknown or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        raise CheckpointError(f"{path}: layer {index} ({name}) has config keys {unknown} it does not take")
    try:  # the layer may draw initial weights only as large as what the file holds for it
        with init.size_limit(elements):
            return classes[name](**config)
    except (XpnnError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: layer {index} cannot be built as {name}({config}): {error}") from None


def build_architecture(path: str, header: dict[str, Any], elements: Callable[[int], int]) -> list[Layer]:
    """Fresh layers of the architecture a (checked) header records; layer ``i`` may draw initial
    weights of at most ``elements(i)`` numbers, what the file holds for it."""
    if header.get("architecture") is None or header.get("kind", "Sequential") != "Sequential":
        raise CheckpointError(
            f"{path}: holds the weights of a {header.get('kind')!s} (not a Sequential of built-in "
            "layers), so it is not rebuilt from the file: build the model and use xpnn.load(path, into=model)"
        )
    return [
        _build_one(path, i, name, config, elements(i))
        for i, (name, config) in enumerate(header["architecture"])
    ]


def build_layers(path: str, archive: Archive) -> list[Layer]:
    """Fresh layers of the saved architecture (their values still the initial ones), after
    the arrays they will read are found within the file's budget (nothing built past it)."""
    saved = [name for name in archive.entries if name.startswith(("param/", "buffer/"))]
    archive.check_budget(saved, layers=len(archive.header.get("architecture") or []))
    return build_architecture(path, archive.header, lambda i: _saved_elements(archive, i))


def read_arrays(archive: Archive, model: Model) -> dict[str, HostArray]:
    """Read exactly the entries the model names (after :func:`check_arrays`: an integer or
    boolean buffer's entry is of the module's own dtype), their values checked
    (:func:`~xpnn.io.file_checks.check_values`: finite, a running variance >= 0)."""
    arrays = {
        name: archive.array(name, kinds="f" if kind is None else archive.entries[name].dtype.kind)
        for name, (_, kind) in expected_entries(model).items()
    }
    check_values(archive.path, arrays, {f"buffer/{name}" for name in nonnegative_names(model)})
    return arrays


def fill(model: Model, header: dict[str, Any], arrays: dict[str, HostArray], *, move: bool = True) -> None:
    """Copy saved parameters and buffers (onto each one's backend and dtype, or as the file's
    host arrays where ``move`` is False: a freshly built model) and module counters."""
    for name, p in model.named_parameters():
        saved = arrays[f"param/{name}"]
        p.value = backend.assign(p.value, backend.move_like(saved, p.value)) if move else saved
        p.grad = None
    for prefix, module in model.named_modules():
        for name, value in module.own_buffers().items():
            saved = arrays[f"buffer/{prefix}.{name}" if prefix else f"buffer/{name}"]
            setattr(module, name, backend.assign(value, backend.move_like(saved, value)) if move else saved)
    modules = dict(model.named_modules())
    for where, counters in header.get("counters", {}).items():
        modules[where].load_counters({key: int(value) for key, value in counters.items()})


def open_checked(path: str | os.PathLike[str]) -> Archive:
    """The file's archive with its header checked (format, version, the model's entries)."""
    opened = archive.read(path)
    check_header(opened.path, opened.header)
    return opened


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Archive, list[Layer]]:
    """The header, the opened archive and fresh layers of the saved architecture (not yet
    filled); every size is checked against the file before anything is allocated for it."""
    opened = open_checked(path)
    return opened.header, opened, build_layers(opened.path, opened)


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
    check_architecture(path, opened, model)
    check_arrays(path, opened, model)
    if check_training is not None:
        check_training(header.get("training"))
    state = None
    if optimizer is not None:
        if header.get("optimizer") is None:
            raise CheckpointError(f"{path}: holds no optimizer state (saved with model.save, not during fit)")
        state = archive.decode(header["optimizer"], opened)
    arrays = read_arrays(opened, model)
    if optimizer is not None:
        _load_optimizer(path, optimizer, state)
    fill(model, header, arrays)
    return header.get("training")

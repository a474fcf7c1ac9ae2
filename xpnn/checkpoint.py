"""Checkpoints: ``.npz`` files of host arrays with a JSON header; data, never pickle.

The header holds a format version, the architecture (each layer's class name and
``config()``), each parameter's name/shape/dtype, per-layer counters (dropout seeds), and
for a training checkpoint the optimizer's ``state_dict`` (its arrays stored as npz entries)
and the run's epoch, seed and history. Shuffling and dropout are pure functions of those
seeds and counters, so they are the whole random state. Every array is a host NumPy array,
so a checkpoint written on CuPy loads on NumPy and vice versa. Writes go to a temporary file
in the same directory, are fsync'd and renamed over the target: a crash mid-save leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import IO, Any

import numpy as np

from xpnn import backend
from xpnn.errors import CheckpointError
from xpnn.layers import Layer
from xpnn.model import Sequential

FORMAT = "xpnn-checkpoint"
VERSION = 1
HEADER = "__header__"
_COUNTERS = ("seed", "epoch", "step")  # the integer state of a layer (Dropout's mask counters)


def architecture(model: Sequential) -> list[list[Any]]:
    """``[[class name, config], ...]`` in JSON form (tuples become lists)."""
    return json.loads(json.dumps([[type(layer).__name__, layer.config()] for layer in model.layers]))


def _encode(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """Nested plain data -> JSON, each array replaced by a reference to an npz entry."""
    if isinstance(value, dict):
        return {str(k): _encode(v, f"{prefix}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    arrays[prefix] = backend.to_host(value)
    return {"__array__": prefix}


def _decode(value: Any, archive: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return np.array(archive[value["__array__"]])
        return {k: _decode(v, archive) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, archive) for v in value]
    return value


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy stubs type the allow_pickle keyword


def _atomic_write(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Write to a temp file in ``path``'s directory, fsync it, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save(
    path: str | os.PathLike[str],
    model: Sequential,
    *,
    optimizer: Any = None,
    training: dict[str, Any] | None = None,
) -> None:
    """Save ``model`` (and optionally an optimizer's state and training progress) to ``path``."""
    arrays: dict[str, np.ndarray] = {}
    params = []
    for name, p in model.named_parameters():
        arrays[f"param/{name}"] = backend.to_host(p.value)
        params.append([name, list(p.shape), backend.dtype_name(p.dtype)])
    counters = {
        str(i): {k: int(getattr(layer, k)) for k in _COUNTERS if isinstance(getattr(layer, k, None), int)}
        for i, layer in enumerate(model.layers)
    }
    header = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": architecture(model),
        "parameters": params,
        "counters": {k: v for k, v in counters.items() if v},
        "model_seed": model.seed,
        "backend": model.backend,
        "optimizer": None if optimizer is None else _encode(optimizer.state_dict(), "optimizer", arrays),
        "training": training,
    }
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    _atomic_write(os.fspath(path), arrays)


def save_training(path: str | os.PathLike[str], run: Any) -> None:
    """Save a :class:`~xpnn.training.TrainingRun`: model, optimizer, epoch, seed and history."""
    training = {
        "epoch": run.epoch,
        "seed": run.seed,
        "batch_size": run.batch_size,
        "history": run.history.to_dict(),
    }
    save(path, run.model, optimizer=run.optimizer, training=training)


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and every array of a checkpoint (read eagerly, then the file is closed)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: np.array(archive[key]) for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(f"{path}: not a readable xpnn checkpoint (.npz): {error}") from None
    if HEADER not in arrays:
        raise CheckpointError(f"{path}: no {HEADER} entry: not an xpnn checkpoint")
    try:
        header = json.loads(arrays.pop(HEADER).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt JSON header: {error}") from None
    if header.get("format") != FORMAT or not isinstance(header.get("version"), int):
        raise CheckpointError(f"{path}: header format {header.get('format')!r}, expected {FORMAT!r}")
    if header["version"] > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {header['version']}, this xpnn reads up to {VERSION}"
        )
    return header, arrays


def _describe(entry: list[Any], shapes: list[tuple[int, ...]]) -> str:
    name, config = entry
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"{name}({args})" + (f" with parameter shapes {shapes}" if shapes else "")


def check_architecture(path: str, header: dict[str, Any], model: Sequential) -> None:
    """Raise :class:`CheckpointError` naming the first layer (or parameter shape) that differs."""
    saved, mine = header["architecture"], architecture(model)
    saved_shapes: dict[int, list[tuple[int, ...]]] = {}
    for name, shape, _ in header["parameters"]:
        saved_shapes.setdefault(int(name.split(".")[0]), []).append(tuple(shape))
    for i in range(max(len(saved), len(mine))):
        ours = [p.shape for p in model.layers[i].parameters()] if i < len(mine) else []
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


def _fill(model: Sequential, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Copy saved parameters (onto each parameter's backend and dtype) and layer counters."""
    for name, p in model.named_parameters():
        p.value = backend.assign(p.value, backend.move_like(arrays[f"param/{name}"], p.value))
        p.grad = None
    for index, counters in header.get("counters", {}).items():
        for key, value in counters.items():
            setattr(model.layers[int(index)], key, int(value))


def load(path: str | os.PathLike[str], *, backend: str = "numpy") -> Sequential:
    """Rebuild a saved model on ``backend`` (NumPy by default; any backend, whatever it was saved on)."""
    path = os.fspath(path)
    header, arrays = _read(path)
    classes = _layer_classes()
    layers = []
    for i, (name, config) in enumerate(header["architecture"]):
        if name not in classes:
            raise CheckpointError(f"{path}: layer {i} is a {name}, which is not a known xpnn Layer class")
        layers.append(classes[name](**config))
    model = Sequential(layers, seed=header.get("model_seed"))
    for (name, _, dtype), p in zip(header["parameters"], model.parameters(), strict=True):
        p.value = arrays[f"param/{name}"].astype(dtype)
    _fill(model, header, arrays)
    return model.to(backend) if backend != "numpy" else model


def load_into(
    path: str | os.PathLike[str], model: Sequential, optimizer: Any = None
) -> dict[str, Any] | None:
    """Load a checkpoint into an existing model (and optimizer), checking the architecture first.

    Returns the training progress saved with it (``None`` for a plain ``model.save``).
    """
    path = os.fspath(path)
    header, arrays = _read(path)
    check_architecture(path, header, model)
    if optimizer is not None:
        if header.get("optimizer") is None:
            raise CheckpointError(f"{path}: holds no optimizer state (saved with model.save, not during fit)")
        optimizer.load_state_dict(_decode(header["optimizer"], arrays))
    _fill(model, header, arrays)
    return header.get("training")


def load_training(path: str | os.PathLike[str], run: Any) -> None:
    """Restore a :class:`~xpnn.training.TrainingRun` from a checkpoint written by ``save_training``."""
    from xpnn.training import History

    training = load_into(path, run.model, run.optimizer)
    if training is None:
        raise CheckpointError(f"{os.fspath(path)}: holds no training progress (saved with model.save)")
    run.epoch, run.seed = int(training["epoch"]), int(training["seed"])
    run.history = History.from_dict(training["history"])

"""Hand-made saved-model files for the hostile-file tests: a real save, then edits."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import xpnn
from xpnn import backend
from xpnn.train.checkpoint import save_training
from xpnn.train.record import TrainingRun


def small_model() -> xpnn.Sequential:
    return xpnn.Sequential([xpnn.Dense(4, 8), xpnn.ReLU(), xpnn.Dropout(0.25), xpnn.Dense(8, 3)], seed=1)


def trained(path: Path) -> tuple[xpnn.Sequential, xpnn.Adam]:
    """A model and an Adam that took steps, saved as a training checkpoint at ``path``."""
    model = small_model()
    optimizer = xpnn.Adam(model.parameters(), lr=1e-2)
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=1, batch_size=10, verbose=0)
    run = TrainingRun(model, xpnn.SoftmaxCrossEntropy(), optimizer, 0, batch_size=10)
    run.epoch = 1
    save_training(path, run)
    return model, optimizer


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path: Path, files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def header_of(files: dict[str, bytes]) -> Any:
    return json.loads(np.load(io.BytesIO(files["__header__.npy"])).tobytes().decode())


def with_header(files: dict[str, bytes], header: Any) -> dict[str, bytes]:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return {**files, "__header__.npy": npy(np.frombuffer(raw, np.uint8))}


def state(model: xpnn.Sequential, optimizer: Any = None) -> list[Any]:
    """Everything a load could change: parameters, buffers, counters, optimizer state."""
    values: list[Any] = [backend.to_host(p.value) for p in model.parameters()]
    values += [layer.counters() for layer in model.layers]
    if optimizer is not None:
        saved = optimizer.state_dict()
        values += [saved["t"], json.dumps(saved["param_groups"], sort_keys=True)]
        values += [
            backend.to_host(v)
            for entry in saved["state"].values()
            for k, v in sorted(entry.items())
            if k != "step"
        ]
    return values


def same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a, b, strict=True)
    )

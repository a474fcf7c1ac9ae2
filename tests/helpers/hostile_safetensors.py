"""Hand-made safetensors files for the hostile-file tests: a real save, then edits of its
header (the 8-byte length, the JSON) or its bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

import xpnn
from xpnn import backend


def small_model(seed: int = 1) -> xpnn.Sequential:
    """Every kind of entry: float weights (one transposed), BatchNorm buffers and its int64
    counter, Dropout's counters in the metadata."""
    layers = [xpnn.Dense(4, 8), xpnn.BatchNorm(8), xpnn.ReLU(), xpnn.Dropout(0.25), xpnn.Dense(8, 3)]
    model = xpnn.Sequential(layers, seed=seed)
    model[1].num_batches_tracked = 3 + seed
    model[1].running_var = model[1].running_var + seed
    return model


def saved(path: Path) -> tuple[bytes, dict[str, Any], bytes]:
    """Save a small model at ``path``; its raw bytes, JSON header and data."""
    xpnn.save(small_model(), path)
    raw = path.read_bytes()
    header, data = split(raw)
    return raw, header, data


def split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def join(header: Any, data: bytes, *, length: int | None = None) -> bytes:
    """A file of ``header`` (JSON, or raw bytes) and ``data``; ``length`` may lie."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def state(model: Any) -> list[Any]:
    """Everything a load could change: parameters, buffers, counters."""
    values: list[Any] = [backend.to_host(v) for v in model.state_dict().values()]
    return values + [module.counters() for _, module in model.named_modules()]


def same(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a, b, strict=True)
    )

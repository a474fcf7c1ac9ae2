"""A saved file checked against an architecture before anything is built, read or changed.

The header's entries must be of the types :func:`xpnn.nn.serialization.save` writes; each
array the architecture names (``param/{i}.{name}``, ``buffer/{i}.{name}``, over every layer's
``parameters()`` and ``buffers()``) must be in the file with the layer's shape and a float
dtype, and no other such entry may be; counters must be the layer's own. All of it reads only
the header and the ``.npy`` headers, never array data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from xpnn.backend.archive import Archive
from xpnn.errors import CheckpointError
from xpnn.nn.layers import Layer


def architecture(layers: Sequence[Layer]) -> list[list[Any]]:
    """``[[class name, config], ...]`` in JSON form (tuples become lists)."""
    return json.loads(json.dumps([[type(layer).__name__, layer.config()] for layer in layers]))


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


def expected_entries(layers: Sequence[Layer]) -> dict[str, tuple[int, ...]]:
    """Every array the architecture names: ``param/{i}.{name}`` and ``buffer/{i}.{name}``."""
    expected = {}
    for i, layer in enumerate(layers):
        expected.update({f"param/{i}.{p.name}": tuple(p.value.shape) for p in layer.parameters()})
        expected.update({f"buffer/{i}.{k}": tuple(v.shape) for k, v in layer.buffers().items()})
    return expected


def _culprit(name: str, layers: Sequence[Layer]) -> str:
    """``layer 1 (BatchNorm(4)): buffer 'running_var'`` for the entry ``buffer/1.running_var``."""
    kind, _, rest = name.partition("/")
    index, _, short = rest.partition(".")
    what = "parameter" if kind == "param" else "buffer"
    return f"layer {index} ({layers[int(index)]!r}): {what} {short!r}"


def check_arrays(path: str, archive: Archive, layers: Sequence[Layer]) -> None:
    """Every parameter and buffer of ``layers`` is in the file with the layer's shape and a float
    dtype; no other ``param/`` or ``buffer/`` entry is; the counters are the layers' own."""
    expected = expected_entries(layers)
    for name, shape in expected.items():
        entry = archive.entries.get(name)
        if entry is None or entry.shape != shape:
            got = "nothing" if entry is None else f"shape {entry.shape}"
            raise CheckpointError(
                f"{path}: {_culprit(name, layers)} expected shape {shape}, the checkpoint has {got} "
                f"(entry {name!r})"
            )
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

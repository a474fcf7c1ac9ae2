"""A saved file checked against a model before anything is built, read or changed.

The header's entries must be of the types :func:`xpnn.io.serialization.save` writes; each
array the model names (``param/{name}``, ``buffer/{name}``, by the dotted names of
``named_parameters()`` and ``named_buffers()``: ``0.weight`` in a Sequential) must be in the
file with the model's shape and a float dtype (an integer or boolean buffer: its own dtype),
and no other such entry may be; counters must be the modules' own. The file of a built-in
Sequential also records its architecture (each built-in layer's class and ``config()``; a
class of the user's has none: it is never rebuilt from a file), checked layer by layer. All
of it reads only the header and the ``.npy`` headers, never array data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.checks import is_floating
from xpnn.errors import CheckpointError
from xpnn.io.archive import Archive
from xpnn.nn.sequential import Sequential

Model = Any  # an xpnn Module


def is_builtin(cls: type) -> bool:
    """Whether ``cls`` is xpnn's own class: only those are ever rebuilt from a file. A class of
    the user's (even one named ``Dense``, or a subclass of a built-in) is not."""
    return cls.__module__.split(".")[0] == "xpnn"


def is_builtin_sequential(model: Any) -> bool:
    """A Sequential whose file records the architecture (not a user's subclass of it, whose
    ``forward`` a rebuilt plain Sequential would not run)."""
    return isinstance(model, Sequential) and is_builtin(type(model))


def architecture(layers: Sequence[Any]) -> list[list[Any]]:
    """``[[class name, config], ...]`` in JSON form (tuples become lists); a layer that is not a
    built-in one with a ``config`` (a user's class) has ``None``: it loads only into an instance."""
    configs = [m.config() if is_builtin(type(m)) and hasattr(m, "config") else None for m in layers]
    return json.loads(json.dumps([[type(m).__name__, c] for m, c in zip(layers, configs, strict=True)]))


def _describe(entry: list[Any], shapes: list[tuple[int, ...]]) -> str:
    name, config = entry
    args = ", ".join(f"{k}={v!r}" for k, v in (config or {}).items())
    return f"{name}({args})" + (f" with parameter shapes {shapes}" if shapes else "")


def check_architecture(path: str, opened: Archive, model: Model) -> None:
    """For a Sequential (and a file that records one): raise :class:`CheckpointError` naming the
    first layer (or parameter shape) that differs; the saved shapes are the file's arrays'."""
    saved = opened.header.get("architecture")
    sequential_file = opened.header.get("kind", "Sequential") == "Sequential"
    if saved is None or not sequential_file or not is_builtin_sequential(model):
        return
    layers = model.layers
    mine = architecture(layers)
    for i in range(max(len(saved), len(mine))):
        ours = [tuple(p.shape) for p in layers[i].parameters()] if i < len(mine) else []
        theirs = [e.shape for n, e in opened.entries.items() if n.startswith(f"param/{i}.")]
        if i >= len(saved) or i >= len(mine) or not _same_layer(saved[i], mine[i]) or theirs != ours:
            there = _describe(saved[i], theirs) if i < len(saved) else "nothing (it has fewer layers)"
            here = _describe(mine[i], ours) if i < len(mine) else "nothing (it has fewer layers)"
            raise CheckpointError(
                f"{path}: architecture differs at layer {i}: the checkpoint has {there}, "
                f"the model has {here} (checkpoint: {len(saved)} layers, model: {len(mine)})"
            )


def _same_layer(saved: list[Any], mine: list[Any]) -> bool:
    """Same class name and config; a user's class has no config (older files: ``{}``), so its
    name and parameter shapes decide."""
    return saved[0] == mine[0] and (saved[1] == mine[1] or None in (saved[1], mine[1]))


def check_header(path: str, header: dict[str, Any]) -> None:
    """The model part of the header: each entry of the type :func:`save` writes."""
    arch = header.get("architecture")
    sequential = header.get("kind", "Sequential") == "Sequential"  # files before kinds: Sequential
    if (sequential or arch is not None) and (
        not isinstance(arch, list)
        or not all(
            isinstance(e, list)
            and len(e) == 2
            and isinstance(e[0], str)
            and (e[1] is None or isinstance(e[1], dict))
            for e in arch
        )
    ):
        raise CheckpointError(f"{path}: header 'architecture' must be a list of [class name, config] pairs")
    for key in ("parameters", "buffers"):
        if not isinstance(header.get(key, []), list):
            raise CheckpointError(f"{path}: header {key!r} must be a list, got {type(header[key]).__name__}")
    counters = header.get("counters", {})
    if not isinstance(counters, dict) or not all(
        isinstance(c, dict) and all(_is_int(v) for v in c.values()) for c in counters.values()
    ):
        raise CheckpointError(f"{path}: header 'counters' must map module names to {{name: integer}}")
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


def expected_entries(model: Model) -> dict[str, tuple[tuple[int, ...], str | None]]:
    """Every array the model names, ``param/{name}`` and ``buffer/{name}``: its shape and, for an
    integer or boolean buffer, its dtype name (None: any float32 or float64)."""
    expected: dict[str, tuple[tuple[int, ...], str | None]] = {
        f"param/{name}": (tuple(p.value.shape), None) for name, p in model.named_parameters()
    }
    for name, value in model.named_buffers():
        kind = None if is_floating(value) else backend.dtype_name(value.dtype)
        expected[f"buffer/{name}"] = (tuple(value.shape), kind)
    return expected


def _culprit(name: str, model: Model) -> str:
    """``layer 1 (BatchNorm(4)): buffer 'running_var'`` for the entry ``buffer/1.running_var``."""
    kind, _, rest = name.partition("/")
    where, _, short = rest.rpartition(".")
    modules = dict(model.named_modules())
    what = "parameter" if kind == "param" else "buffer"
    label = "layer" if isinstance(model, Sequential) else "module"
    return f"{label} {where or '(top)'} ({modules.get(where, model)!r}): {what} {short!r}"


def check_arrays(path: str, archive: Archive, model: Model) -> None:
    """Every parameter and buffer of ``model`` is in the file with the model's shape and a float
    dtype; no other ``param/`` or ``buffer/`` entry is; the counters are the modules' own."""
    expected = expected_entries(model)
    for name, (shape, kind) in expected.items():
        entry = archive.entries.get(name)
        if entry is None or entry.shape != shape:
            got = "nothing" if entry is None else f"shape {entry.shape}"
            raise CheckpointError(
                f"{path}: {_culprit(name, model)} expected shape {shape}, the checkpoint has {got} "
                f"(entry {name!r})"
            )
        if kind is not None and entry.dtype != np.dtype(kind):
            raise CheckpointError(f"{path}: {name!r} has dtype {entry.dtype}, expected {kind} (the module's)")
        if kind is None and (entry.dtype.kind != "f" or entry.dtype.itemsize not in (4, 8)):
            raise CheckpointError(f"{path}: {name!r} has dtype {entry.dtype}, expected float32 or float64")
    stray = sorted(n for n in archive.entries if n.startswith(("param/", "buffer/")) and n not in expected)
    if stray:
        raise CheckpointError(f"{path}: arrays {stray[:5]} belong to no parameter or buffer of the model")
    check_counters(path, archive.header.get("counters", {}), model)


def check_counters(path: str, saved: dict[str, dict[str, int]], model: Model) -> None:
    """Each saved module's counters are among that module's own (a checked header's)."""
    modules = dict(model.named_modules())
    for where, counters in saved.items():
        module = modules.get(where)
        own = set() if module is None else set(module.counters())
        if module is None or not set(counters) <= own:
            raise CheckpointError(
                f"{path}: counters {sorted(counters)} for module {where!r}, which has counters {sorted(own)}"
            )


def nonnegative_names(model: Model) -> set[str]:
    """The dotted names of the buffers a file must hold >= 0 (``Module.nonnegative_buffers``)."""
    return {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in module.nonnegative_buffers
        if name in module.own_buffers()
    }


def check_values(path: str, arrays: Mapping[str, np.ndarray], nonnegative: set[str]) -> None:
    """Every floating array read from a file is finite, and those named in ``nonnegative`` (a
    running variance) are >= 0: a NaN running mean would make evaluate NaN, a negative
    running variance every prediction NaN, long after the load that let them in. The arrays
    are host arrays already read, so this costs no device sync (once per load)."""
    for name, host in arrays.items():
        if host.dtype.kind != "f":
            continue
        finite = np.isfinite(host)
        if not finite.all():
            first = int(np.argmin(finite.reshape(-1)))
            raise CheckpointError(
                f"{path}: entry {name!r} holds {int(finite.size - finite.sum())} non-finite values "
                f"(first at flat index {first}: {host.reshape(-1)[first]}); a model's values must be finite"
            )
        if name in nonnegative and host.size and float(host.min()) < 0:
            raise CheckpointError(
                f"{path}: entry {name!r} (a running variance) holds negative values (min "
                f"{float(host.min())}), expected >= 0"
            )

"""A model as a safetensors file: torch's names and layouts, the architecture in the metadata.

The tensors are ``model.state_dict(to_torch=True)`` on the host (``"0.weight"`` transposed
for a Dense, ``"1.num_batches_tracked"`` for a BatchNorm), so ``safetensors.torch.load_file``
gives a state dict that a torch module of the same architecture loads. The metadata (strings
only, as the format wants) says ``"format": "pt"`` (Hugging Face's mark for torch layouts)
and holds xpnn's own header as JSON texts under ``xpnn.*``: the model's class, a
Sequential's architecture (class names and configs: :func:`xpnn.load` rebuilds it), the
modules' counters (Dropout's seeds: the rest of the random state) and the model's seed. A
safetensors file from torch has no such metadata: it loads into a model you build.

Loading trusts nothing: :mod:`xpnn.io.safetensors_file` checks the format; the metadata is
checked as an ``.npz`` header is (:func:`xpnn.io.file_checks.check_header`); every entry the
model names must be in the file with the model's shape and a float dtype (a counter: an
integer), no other entry may be, the counters must be the modules' own; a rebuilt layer may
draw initial weights only as large as what the file holds for it. Only then are the entries'
bytes read, and only then does the model change.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xpnn import backend
from xpnn.errors import CheckpointError, XpnnError
from xpnn.io import safetensors_file
from xpnn.io.file_checks import architecture, check_counters, check_header, check_values, nonnegative_names
from xpnn.io.safetensors_file import FLOATS, INTEGERS, SafetensorsFile
from xpnn.io.serialization import build_architecture
from xpnn.nn.torch_layout import Slot, check_torch_state, slots

Model = Any
VERSION = 1
_KEYS = ("kind", "architecture", "counters", "model_seed")  # JSON texts under "xpnn.<key>"


def save(path: str | os.PathLike[str], model: Model, *, optimizer: Any = None) -> None:
    """Write ``model``'s parameters, buffers and counters to ``path`` (atomically)."""
    if optimizer is not None:
        raise CheckpointError(
            f"{os.fspath(path)}: a .safetensors file holds a model's weights only; save the optimizer's "
            "state in a training checkpoint (.npz)"
        )
    plan = slots(model)
    tensors = host_tensors(model)
    in_tensors = {slot.xpnn_name for slot in plan if slot.kind == "counter"}
    counters = {}
    for where, module in model.named_modules():
        own = {
            k: v for k, v in module.counters().items() if (f"{where}.{k}" if where else k) not in in_tensors
        }
        if own:
            counters[where] = own
    layers = getattr(model, "layers", None)
    header = {
        "kind": "Sequential" if layers is not None else type(model).__name__,
        "architecture": None if layers is None else architecture(layers),
        "counters": counters,
        "model_seed": getattr(model, "seed", None),
    }
    metadata = {"format": "pt", "xpnn.version": str(VERSION)}
    metadata.update({f"xpnn.{key}": json.dumps(value) for key, value in header.items()})
    safetensors_file.write(path, tensors, metadata)


def read_header(opened: SafetensorsFile) -> dict[str, Any]:
    """xpnn's header from the metadata (empty for a file torch wrote), checked as an npz's."""
    metadata, path = opened.metadata, opened.path
    if "xpnn.version" not in metadata:
        return {"kind": None, "counters": {}}
    if metadata["xpnn.version"] != str(VERSION):
        raise CheckpointError(
            f"{path}: xpnn.version {metadata['xpnn.version']!r:.20}, this xpnn reads {VERSION}"
        )
    header: dict[str, Any] = {}
    for key in _KEYS:
        try:
            header[key] = json.loads(metadata.get(f"xpnn.{key}", "null"))
        except (json.JSONDecodeError, RecursionError) as error:
            raise CheckpointError(f"{path}: metadata xpnn.{key} is not JSON: {error}") from None
    header["counters"] = {} if header["counters"] is None else header["counters"]
    if header["kind"] != "Sequential" and header["architecture"] is not None:
        raise CheckpointError(f"{path}: an architecture for a {header['kind']!r:.40}, not a Sequential")
    check_header(path, header)
    return header


def _expected(slot: Slot) -> tuple[tuple[int, ...], Sequence[str]]:
    """The shape and the file dtypes one torch entry of the model may have."""
    if slot.kind == "counter":
        return (), INTEGERS
    shape = tuple(slot.current().shape)
    return (shape[::-1] if slot.transposed else shape), FLOATS


def check_entries(opened: SafetensorsFile, plan: list[Slot]) -> None:
    """Every entry the model names is in the file with its shape and a fitting dtype; no
    other entry is (a missing counter keeps its value, as in torch). Reads the header only."""
    for slot in plan:
        shape, dtypes = _expected(slot)
        entry = opened.entries.get(slot.torch_name)
        if entry is None and slot.kind == "counter":
            continue
        if entry is None or entry.shape != shape or entry.dtype not in dtypes:
            got = "nothing" if entry is None else f"shape {entry.shape} of {entry.dtype}"
            kinds = "an integer dtype" if slot.kind == "counter" else "/".join(dtypes)
            raise CheckpointError(
                f"{opened.path}: {slot.kind} {slot.xpnn_name!r} (entry {slot.torch_name!r}) expected "
                f"shape {shape} of {kinds}, the file has {got}"
            )
    stray = sorted(set(opened.entries) - {slot.torch_name for slot in plan})
    if stray:
        raise CheckpointError(
            f"{opened.path}: entries {stray[:5]} belong to no parameter or buffer of the model"
        )


def _check_architecture(path: str, saved: Any, model: Model) -> None:
    """A Sequential loaded from a file that records one: the first layer that differs."""
    layers = getattr(model, "layers", None)
    if saved is None or layers is None:
        return
    mine = architecture(layers)
    for i in range(max(len(saved), len(mine))):
        if i >= len(saved) or i >= len(mine) or saved[i] != mine[i]:
            there = saved[i] if i < len(saved) else "nothing"
            here = mine[i] if i < len(mine) else "nothing"
            raise CheckpointError(
                f"{path}: architecture differs at layer {i}: the file has {there}, the model {here}"
            )


def fill(opened: SafetensorsFile, header: dict[str, Any], model: Model) -> None:
    """Check the file against ``model`` whole, read the entries it names, then load them."""
    path, plan = opened.path, slots(model)
    _check_architecture(path, header.get("architecture"), model)
    check_entries(opened, plan)
    check_counters(path, header["counters"], model)
    arrays = {
        slot.torch_name: opened.array(slot.torch_name) for slot in plan if slot.torch_name in opened.entries
    }
    nonnegative = nonnegative_names(model)
    check_values(path, arrays, {slot.torch_name for slot in plan if slot.xpnn_name in nonnegative})
    try:
        load, _, _ = check_torch_state(model, arrays, who=path)
    except XpnnError as error:  # not after check_entries; kept as the file's error if it ever is
        raise CheckpointError(str(error)) from None
    load()
    modules = dict(model.named_modules())
    for where, counters in header["counters"].items():
        modules[where].load_counters({**modules[where].counters(), **counters})


def load_into(path: str | os.PathLike[str], model: Model) -> None:
    """Load a safetensors file into ``model`` (checked whole first; a refused file changes nothing)."""
    opened = safetensors_file.read(path)
    fill(opened, read_header(opened), model)


def load(path: str | os.PathLike[str], sequential: Callable[..., Model], target: str = "numpy") -> Model:
    """Rebuild the Sequential a file records (``sequential``: the class to build it with) on
    the file's float dtype, filled from the file, then moved to ``target``."""
    opened = safetensors_file.read(path)
    header = read_header(opened)
    if header["kind"] is None:
        raise CheckpointError(
            f"{opened.path}: no xpnn architecture in its metadata (a torch file?): build the model and "
            "load it with xpnn.load(path, into=model)"
        )

    def elements(i: int) -> int:
        return sum(math.prod(e.shape) for name, e in opened.entries.items() if name.startswith(f"{i}."))

    model = sequential(build_architecture(opened.path, header, elements), seed=header.get("model_seed"))
    floats = {e.dtype for e in opened.entries.values() if e.dtype in FLOATS}
    if floats == {"F64"}:
        model.to("numpy", dtype="float64")
    fill(opened, header, model)
    return model.to(target) if target != "numpy" else model


def host_tensors(model: Model) -> dict[str, np.ndarray]:
    """``model.state_dict(to_torch=True)`` as host arrays (what :func:`save` writes)."""
    return {name: backend.to_host(value) for name, value in model.state_dict(to_torch=True).items()}

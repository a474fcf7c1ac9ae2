"""torch's names and layouts for a module's state: ``state_dict(to_torch=True)`` and
``load_state_dict(d, from_torch=True)``.

A module's state maps onto its torch twin's by the same walk torch's ``state_dict`` makes:
each module's own parameters, then its buffers, then its counters that torch keeps as tensors,
then its children by attribute name, with dotted prefixes (``"5.weight"``, ``"blocks.0.bn.
running_mean"``). Most layers already have torch's names and layouts (Conv2D, Embedding's
``weight`` (num_embeddings, dim), LayerNorm's ``weight`` / ``bias``); :data:`TORCH_LAYOUTS`
lists, by class name, the ones that differ: Dense keeps the book's (n_in, n_out) weight, the
transpose of torch's Linear; BatchNorm's ``num_batches_tracked`` is a host counter here and a
0-d int64 tensor there; MultiHeadAttention's projections are torch's packed ``in_proj_*`` and
``out_proj.*``. A new layer joins with one line in that table.

Loading checks the whole mapping (every name, shape and dtype) before anything changes and
names the first mismatch. Values may be torch tensors, NumPy arrays or arrays of any backend;
torch is never imported here (a torch tensor is recognised by its type's module).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xpnn import backend
from xpnn.errors import CheckpointError, DTypeError, ShapeError
from xpnn.nn.parameter import Parameter

Array = Any
HostArray = Any  # a host NumPy array (backend.to_host's)
Module = Any  # an xpnn.nn.Module (duck-typed: this file is imported by nn.module)


@dataclass(frozen=True)
class TorchLayout:
    """How one layer class's state differs from its torch twin's.

    ``renamed``: xpnn name (relative to the layer, dotted where it lies in a sub-module) ->
    torch name; ``transposed``: xpnn names whose array is the transpose of torch's;
    ``counters``: counter name (:meth:`Module.counters`) -> torch name of a 0-d int64 tensor.
    A layout that renames a sub-module's state (a dotted name) covers the layer's whole
    subtree: the sub-modules' own layouts are not consulted.
    """

    renamed: Mapping[str, str] = field(default_factory=dict)
    transposed: frozenset[str] = frozenset()
    counters: Mapping[str, str] = field(default_factory=dict)

    @property
    def whole(self) -> bool:
        return any("." in name for name in self.renamed)


TORCH_LAYOUTS: dict[str, TorchLayout] = {
    "Dense": TorchLayout(transposed=frozenset({"weight"})),
    "BatchNorm": TorchLayout(counters={"num_batches_tracked": "num_batches_tracked"}),
    "MultiHeadAttention": TorchLayout(  # torch's nn.MultiheadAttention: q, k, v rows in that order
        renamed={
            "qkv.weight": "in_proj_weight",
            "qkv.bias": "in_proj_bias",
            "out.weight": "out_proj.weight",
            "out.bias": "out_proj.bias",
        },
        transposed=frozenset({"qkv.weight", "out.weight"}),
    ),
}
_SAME = TorchLayout()


def layout_of(module: Module) -> TorchLayout:
    """The layout of the nearest class in ``module``'s MRO that :data:`TORCH_LAYOUTS` names."""
    for cls in type(module).__mro__:
        if cls.__name__ in TORCH_LAYOUTS:
            return TORCH_LAYOUTS[cls.__name__]
    return _SAME


@dataclass(frozen=True)
class Slot:
    """One torch entry: where its value lives in xpnn (a Parameter's ``value``, a module's
    buffer or counter attribute) and whether the two layouts are transposes."""

    torch_name: str
    xpnn_name: str
    owner: Any
    attribute: str
    kind: str  # "parameter" | "buffer" | "counter"
    transposed: bool

    def current(self) -> Any:
        return getattr(self.owner, self.attribute)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _own_state(module: Module, whole: bool) -> list[tuple[str, Any, str, str]]:
    """``(xpnn name, owner, attribute, kind)`` of the module's own parameters and buffers (its
    whole subtree's where ``whole``), parameters first, as torch's ``state_dict`` orders them."""
    own = [(name, item) for name, item in module.members() if isinstance(item, Parameter)]
    params = module.named_parameters() if whole else own
    found = [(name, p, "value", "parameter") for name, p in params if p.value is not None]
    modules = module.named_modules() if whole else [("", module)]
    for prefix, sub in modules:
        found += [(_join(prefix, name), sub, name, "buffer") for name in sub.own_buffers()]
    return found


def slots(module: Module, prefix: str = "", depth: int = 0) -> list[Slot]:
    """Every torch entry of ``module``'s state dict, in torch's order (a shared sub-module is
    listed under each of its names, as torch lists it)."""
    if depth > 100:
        raise CheckpointError(f"{type(module).__name__}: modules nested more than 100 deep")
    layout = layout_of(module)
    found = []
    for name, owner, attribute, kind in _own_state(module, layout.whole):
        torch_name = _join(prefix, layout.renamed.get(name, name))
        transposed = name in layout.transposed
        found.append(Slot(torch_name, _join(prefix, name), owner, attribute, kind, transposed))
    for name in module.counters():
        if name in layout.counters:
            torch_name = _join(prefix, layout.counters[name])
            found.append(Slot(torch_name, _join(prefix, name), module, name, "counter", False))
    if not layout.whole:
        for name, child in module.named_children():
            found += slots(child, _join(prefix, name), depth + 1)
    return found


def torch_state(module: Module) -> dict[str, Array]:
    """``{torch name: array}`` on the module's backend: torch's names and layouts (a Dense weight
    transposed, BatchNorm's ``num_batches_tracked`` a 0-d int64 array)."""
    plan = slots(module)
    arrays = [s.current() for s in plan if s.kind != "counter"]
    state: dict[str, Array] = {}
    for slot in plan:
        value = slot.current()
        if slot.kind == "counter":
            like = arrays[0] if arrays else backend.resolve("numpy").xp.zeros(0)
            xp = backend.namespace(like)
            value = xp.asarray(int(value), dtype=xp.int64, device=backend.device_of(like))
        elif slot.transposed:
            value = backend.namespace(value).permute_dims(value, tuple(range(value.ndim - 1, -1, -1)))
        state[slot.torch_name] = value
    return state


def _host(value: Any) -> Any:
    """A host NumPy array of ``value`` (a torch tensor, possibly bfloat16 or on a GPU; an xpnn
    Tensor; an array of any backend), or ``value`` itself where it is no array."""
    value = getattr(value, "value", value) if type(value).__name__ == "Tensor" else value
    if type(value).__module__.startswith("torch"):  # torch without importing it
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            value = value.float()
        return value.numpy()
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return backend.to_host(value)
    return value


def _checked(who: str, slot: Slot, value: Any) -> HostArray | int:
    """The entry as a host array in xpnn's layout (or an int, for a counter), after checking
    its type, shape and dtype against the slot."""
    host = _host(value)
    what = f"{who}: {slot.torch_name!r} (xpnn {slot.kind} {slot.xpnn_name!r})"
    if not (hasattr(host, "shape") and hasattr(host, "dtype")):
        raise DTypeError(f"{what} is a {type(value).__name__}, expected an array or tensor")
    if slot.kind == "counter":
        if host.shape not in ((), (1,)) or host.dtype.kind not in "iu" or int(host.reshape(())) < 0:
            raise DTypeError(f"{what}: expected a 0-d integer >= 0, got {host.dtype} of shape {host.shape}")
        return int(host.reshape(()))
    current = slot.current()
    shape = tuple(current.shape)[::-1] if slot.transposed else tuple(current.shape)
    if tuple(host.shape) != shape:
        raise ShapeError(f"{what} has shape {tuple(host.shape)}, expected {shape}")
    if host.dtype.kind != "f":
        raise DTypeError(f"{what} has dtype {host.dtype}, expected a floating-point array")
    return host.T.copy() if slot.transposed else host  # a host (NumPy) array: C order


def _assign(slot: Slot, host: Any) -> None:
    """Put one checked entry into the model (onto the current value's backend, device, dtype)."""
    if slot.kind == "counter":
        slot.owner.load_counters({**slot.owner.counters(), slot.attribute: host})
        return
    current = slot.current()
    setattr(slot.owner, slot.attribute, backend.assign(current, backend.move_like(host, current)))
    if slot.kind == "parameter":
        slot.owner.grad = None


def check_torch_state(
    module: Module, state: Mapping[str, Any], *, strict: bool = True, who: str = ""
) -> tuple[Callable[[], None], list[str], list[str]]:
    """Check a torch state dict against ``module`` whole (names, shapes, dtypes); returns the
    function that then loads it, and the missing and unexpected keys (torch's names).
    Nothing changes until that function is called."""
    who = who or f"{type(module).__name__}.load_state_dict(from_torch=True)"
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{who}: expected a mapping of names to tensors, got {type(state).__name__}")
    plan = slots(module)
    names = {slot.torch_name: slot for slot in plan}
    # a missing counter keeps its value and is not reported, as torch's BatchNorm does for a
    # state dict without torch's version metadata (a plain dict, a safetensors file)
    missing = [name for name, slot in names.items() if name not in state and slot.kind != "counter"]
    unexpected = [str(name) for name in state if name not in names]
    if strict and (missing or unexpected):
        first = f" (xpnn {names[missing[0]].xpnn_name!r})" if missing else ""
        raise CheckpointError(
            f"{who}: missing keys {missing[:5]}{first}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    updates = [
        (slot, _checked(who, slot, state[slot.torch_name])) for slot in plan if slot.torch_name in state
    ]

    def load() -> None:
        for slot, host in updates:
            _assign(slot, host)

    return load, missing, unexpected


def load_torch_state(
    module: Module, state: Mapping[str, Any], *, strict: bool = True
) -> tuple[list[str], list[str]]:
    """See :meth:`xpnn.nn.Module.load_state_dict` with ``from_torch=True``."""
    load, missing, unexpected = check_torch_state(module, state, strict=strict)
    load()
    return missing, unexpected

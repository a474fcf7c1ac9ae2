"""``Module.load_state_dict``: arrays by dotted name into parameters and buffers, checked whole
before anything changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn import backend
from xpnn.autograd.tensor import Tensor
from xpnn.checks import is_floating
from xpnn.errors import CheckpointError, DTypeError, ShapeError

Array = Any


def _targets(module: Any) -> dict[str, tuple[Any, str, Array]]:
    """Every loadable name: (owner, attribute, current array); a parameter's owner is itself."""
    targets: dict[str, tuple[Any, str, Array]] = {
        name: (p, "value", p.value) for name, p in module.named_parameters()
    }
    for prefix, sub in module.named_modules():
        for name, value in sub.own_buffers().items():
            targets[f"{prefix}.{name}" if prefix else name] = (sub, name, value)
    return targets


def _check(who: str, name: str, value: Any, like: Array) -> Array:
    """The entry as an array of ``like``'s shape, floating like it (any backend)."""
    value = value.value if isinstance(value, Tensor) else value
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        raise DTypeError(f"{who}: {name!r} is a {type(value).__name__}, expected an array")
    if tuple(value.shape) != tuple(like.shape):
        raise ShapeError(
            f"{who}: {name!r} has shape {tuple(value.shape)}, the module's is {tuple(like.shape)}"
        )
    host = backend.to_host(value)
    if host.dtype.kind != "f" and is_floating(like):
        raise DTypeError(f"{who}: {name!r} has dtype {host.dtype}, expected a floating-point array")
    return host


def load_state(module: Any, state: Mapping[str, Any], *, strict: bool = True) -> tuple[list[str], list[str]]:
    """See :meth:`xpnn.nn.Module.load_state_dict`."""
    who = f"{type(module).__name__}.load_state_dict"
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{who}: expected a mapping of names to arrays, got {type(state).__name__}")
    targets = _targets(module)
    missing = [name for name in targets if name not in state]
    unexpected = [name for name in state if name not in targets]
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{who}: missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected keys "
            f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    checked = {name: _check(who, name, state[name], targets[name][2]) for name in targets if name in state}
    for name, host in checked.items():
        owner, attribute, like = targets[name]
        value = backend.assign(like, backend.move_like(host, like))
        setattr(owner, attribute, value)
        if isinstance(owner, Tensor):
            owner.grad = None
    return missing, unexpected

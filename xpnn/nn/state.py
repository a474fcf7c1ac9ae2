"""A module's arrays as a whole: ``Module.load_state_dict`` (arrays by dotted name into
parameters and buffers, checked whole before anything changes), ``Module.to`` (every array
moved to a backend, the floating ones cast) and ``register_buffer``'s checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn import backend
from xpnn.autograd.tensor import Tensor
from xpnn.checks import check_float_dtype, is_floating
from xpnn.errors import ArgumentError, ArgumentTypeError, CheckpointError, DTypeError, ShapeError

Array = Any


def targets(module: Any) -> dict[str, tuple[Any, str, Array]]:
    """Every parameter and buffer by dotted name: (owner, attribute, current array), so that
    ``setattr(owner, attribute, new)`` replaces it; a parameter's owner is itself."""
    found: dict[str, tuple[Any, str, Array]] = {
        name: (p, "value", p.value) for name, p in module.named_parameters()
    }
    for prefix, sub in module.named_modules():
        for name, value in sub.own_buffers().items():
            found[f"{prefix}.{name}" if prefix else name] = (sub, name, value)
    return found


def _check(who: str, name: str, value: Any, like: Array) -> Array:
    """The entry as a host array of ``like``'s shape: floating where ``like`` is (any float
    dtype: it is cast), else of ``like``'s own dtype (an integer or boolean buffer)."""
    value = value.value if isinstance(value, Tensor) else value
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        raise DTypeError(f"{who}: {name!r} is a {type(value).__name__}, expected an array")
    if tuple(value.shape) != tuple(like.shape):
        raise ShapeError(
            f"{who}: {name!r} has shape {tuple(value.shape)}, the module's is {tuple(like.shape)}"
        )
    host = backend.to_host(value)
    if is_floating(like) and host.dtype.kind != "f":
        raise DTypeError(f"{who}: {name!r} has dtype {host.dtype}, expected a floating-point array")
    if not is_floating(like) and backend.dtype_name(host.dtype) != backend.dtype_name(like.dtype):
        raise DTypeError(f"{who}: {name!r} has dtype {host.dtype}, expected {backend.dtype_name(like.dtype)}")
    return host


def load_state(module: Any, state: Mapping[str, Any], *, strict: bool = True) -> tuple[list[str], list[str]]:
    """See :meth:`xpnn.nn.Module.load_state_dict`."""
    who = f"{type(module).__name__}.load_state_dict"
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{who}: expected a mapping of names to arrays, got {type(state).__name__}")
    places = targets(module)
    missing = [name for name in places if name not in state]
    unexpected = [name for name in state if name not in places]
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{who}: missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected keys "
            f"{unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    checked = {name: _check(who, name, state[name], places[name][2]) for name in places if name in state}
    for name, host in checked.items():
        owner, attribute, like = places[name]
        value = backend.assign(like, backend.move_like(host, like))
        setattr(owner, attribute, value)
        if isinstance(owner, Tensor):
            owner.grad = None
    return missing, unexpected


def move_to(module: Any, target: backend.Backend, dtype: str | None) -> None:
    """See :meth:`xpnn.nn.Module.to`: the dtype is checked before anything moves."""
    check_float_dtype(f"{module.who()}.to", target.xp, dtype)

    def moved(value: Array) -> Array:
        kind = dtype if dtype is not None and is_floating(value) else backend.dtype_name(value.dtype)
        return backend.from_host(backend.to_host(value), target, backend.dtype_named(target.xp, kind))

    for p in module.parameters():
        p.value, p.grad = moved(p.value), None
    for sub in module.modules():
        for name, value in sub.own_buffers().items():
            setattr(sub, name, moved(value))


def check_buffer(who: str, name: Any, value: Any, taken: Any) -> None:
    """``register_buffer(name, value)``'s arguments: an identifier and an array (or None), and
    not the name of a Parameter or Module the module already holds (``taken``)."""
    is_array = hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, Tensor)
    if not (isinstance(name, str) and name.isidentifier()) or not (value is None or is_array):
        raise ArgumentTypeError(
            f"{who}.register_buffer: expected an identifier and an array (or None), got "
            f"{name!r} and a {type(value).__name__}"
        )
    if taken is not None:
        raise ArgumentError(
            f"{who}.register_buffer: {name!r} is already a {type(taken).__name__} of this module; "
            "a buffer needs a name of its own"
        )

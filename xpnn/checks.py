"""Free input checks (shape, dtype, namespace, device) with messages naming the culprit.

None of these reads array values, so none synchronises with the device.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

from xpnn.backend import backend_name, device_of, namespace
from xpnn.errors import ArgumentError, ArgumentTypeError, BackendMismatchError, DTypeError, ShapeError

Array = Any


_KINDS: dict[tuple[type, Any, str], bool] = {}


def _is_kind(x: Array, kind: str) -> bool:
    key = (type(x), x.dtype, kind)  # cached: ``isdtype`` costs microseconds on every call
    found = _KINDS.get(key)
    if found is None:
        found = _KINDS[key] = bool(namespace(x).isdtype(x.dtype, kind))
    return found


def is_floating(x: Array) -> bool:
    return _is_kind(x, "real floating")


def is_integral(x: Array) -> bool:
    return _is_kind(x, "integral")


def check_array(who: str, x: Array, what: str = "input") -> None:
    """Raise a ``TypeError`` naming ``who`` when ``x`` is not an array of a supported namespace."""
    try:
        namespace(x)
    except TypeError:
        raise BackendMismatchError(
            f"{who}: expected {what} to be an array of a supported backend, got {type(x).__name__}"
        ) from None


def check_rank(who: str, x: Array, ndim: int, layout: str, what: str = "input") -> None:
    if x.ndim != ndim:
        raise ShapeError(f"{who}: expected {what} of shape {layout}, got {tuple(x.shape)}")


def check_floating(who: str, x: Array, what: str = "input") -> None:
    if not is_floating(x):
        raise DTypeError(f"{who}: expected a floating-point {what}, got dtype {x.dtype}")


def check_like(who: str, x: Array, like: Array, what: str = "input") -> None:
    """``x`` must share namespace, device and dtype with ``like`` (the layer's parameter)."""
    if type(x) is not type(like):
        raise BackendMismatchError(
            f"{who}: expected {what} on backend {backend_name(like)!r}, "
            f"got an array of backend {backend_name(x)!r} ({type(x).__module__}.{type(x).__name__}); "
            "move the model or the data with .to()"
        )
    if device_of(x) != device_of(like):
        raise BackendMismatchError(
            f"{who}: expected {what} on device {device_of(like)}, got device {device_of(x)}"
        )
    if x.dtype != like.dtype:
        raise DTypeError(
            f"{who}: expected {what} of dtype {like.dtype} (the parameters' dtype), got {x.dtype}; "
            "cast the data or the model explicitly (no silent up- or down-cast)"
        )


class ArrayKind(NamedTuple):
    """What a ``backward`` expects of ``dout``, kept without holding the output array: the
    last output's shape, array type, device and dtype."""

    shape: tuple[int, ...]
    type: Any  # the array class (typed Any: mypy would narrow dout to object after "is")
    device: Any
    dtype: Any


def kind_of(x: Array) -> ArrayKind:
    return ArrayKind(tuple(x.shape), type(x), device_of(x), x.dtype)


def check_dout(who: str | Callable[[], str], dout: Array, kind: ArrayKind) -> None:
    """``dout`` must be an array of the last output's shape, namespace, device and dtype: a
    transposed gradient of the right size, a (1, C) one that would broadcast, a float64 or a
    torch gradient for a NumPy float32 output are refused before anything changes. ``who``
    may be a function giving the name: it is formatted only for an error (this runs per step)."""
    if type(dout) is kind.type and dout.dtype == kind.dtype and tuple(dout.shape) == kind.shape:
        if device_of(dout) == kind.device:
            return
    who = who() if callable(who) else who
    check_array(who, dout, "dout")
    if tuple(dout.shape) != kind.shape:
        shape = tuple(dout.shape)
        raise ShapeError(f"{who}: expected dout of shape {kind.shape} (the last output's), got {shape}")
    if type(dout) is not kind.type or device_of(dout) != kind.device:
        expected = f"{kind.type.__module__}.{kind.type.__name__} on device {kind.device}"
        got = f"{type(dout).__module__}.{type(dout).__name__} on device {device_of(dout)}"
        raise BackendMismatchError(f"{who}: expected dout of the last output's type {expected}, got {got}")
    if dout.dtype != kind.dtype:
        raise DTypeError(f"{who}: expected dout of dtype {kind.dtype} (the last output's), got {dout.dtype}")


def check_count(who: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int``: any ``numbers.Integral`` but ``bool``, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(
            f"{who}: expected {name} to be an integer, got {type(value).__name__} {value!r}"
        )
    if value < minimum:
        raise ArgumentError(f"{who}: expected {name} >= {minimum}, got {value}")
    return int(value)


def check_number(who: str, name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (any ``numbers.Real`` but ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            f"{who}: expected {name} to be a number, got {type(value).__name__} {value!r}"
        )
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ArgumentError(f"{who}: expected {name} a finite number in [{low}, {high}], got {value!r}")
    return number


def check_flag(who: str, name: str, value: Any) -> bool:
    """``value`` a bool: ``affine="no"`` (from a file's header, say) is not taken as True."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{who}: expected {name} True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_seed(who: str, seed: Any) -> int | None:
    """A seed is None (fresh entropy) or an integer >= 0, as NumPy's generators take."""
    return None if seed is None else check_count(who, "seed", seed, minimum=0)


FLOAT_DTYPES = ("float32", "float64")


def check_float_dtype(who: str, xp: Any, dtype: Any) -> None:
    """``dtype`` (a name such as ``"float64"``, or None: keep) must be a real floating dtype
    of namespace ``xp``: casting weights to integers would truncate every one of them."""
    if dtype is None:
        return
    if not isinstance(dtype, str) or dtype not in FLOAT_DTYPES or not hasattr(xp, dtype):
        raise DTypeError(
            f"{who}: expected dtype one of {', '.join(FLOAT_DTYPES)} (floating point), got {dtype!r}"
        )


def check_floating_input(who: str, x: Array, what: str = "input") -> None:
    """An array of a supported namespace with a real floating dtype."""
    check_array(who, x, what)
    check_floating(who, x, what)


def check_shape(who: str, name: str, x: Array, ndim: int, layout: str) -> None:
    """``x`` (argument ``name``) an array of rank ``ndim``."""
    check_array(who, x, name)
    if x.ndim != ndim:
        raise ShapeError(f"{who}: expected {name} of shape {layout}, got {tuple(x.shape)}")


def check_rank_at_least(who: str, name: str, x: Array, ndim: int, layout: str) -> None:
    if x.ndim < ndim:
        raise ShapeError(f"{who}: expected {name} of shape {layout}, got {tuple(x.shape)}")


def check_axis(who: str, x: Array, axis: Any) -> int:
    """``axis`` an int naming an axis of ``x``; returned as is."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ArgumentTypeError(f"{who}: expected axis to be an integer, got {type(axis).__name__} {axis!r}")
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ArgumentError(f"{who}: axis {axis} is out of range for an input of shape {tuple(x.shape)}")
    return int(axis)


def check_choice(who: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ArgumentError(f"{who}: expected {name} one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def check_labels(who: str, logits: Array, target: Array, ignore_index: Any = None) -> bool:
    """Logits (N, C) with integer labels (N,) (True) or float targets (N, C) (False), in one
    namespace and on one device; no label values are read (no host sync)."""
    check_floating_input(who, logits, "logits")
    check_array(who, target, "labels")
    if type(target) is not type(logits) or device_of(target) != device_of(logits):
        raise BackendMismatchError(
            f"{who}: labels ({backend_name(target)}, device {device_of(target)}) must be on the "
            f"logits' backend and device ({backend_name(logits)}, {device_of(logits)})"
        )
    if logits.ndim != 2:
        raise ShapeError(
            f"{who}: expected logits of shape (batch, classes), got {tuple(logits.shape)} "
            "(reshape a sequence's logits to (batch * time, classes) and its labels to (batch * time,))"
        )
    if is_integral(target):
        if target.ndim != 1 or target.shape[0] != logits.shape[0]:
            raise ShapeError(
                f"{who}: expected labels of shape ({logits.shape[0]},) for logits of shape "
                f"{tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise ArgumentTypeError(f"{who}: expected ignore_index an int or None, got {ignore_index!r}")
        return True
    check_floating(who, target, "targets")
    if tuple(target.shape) != tuple(logits.shape):
        raise ShapeError(
            f"{who}: expected integer labels of shape ({logits.shape[0]},) or probabilities of shape "
            f"{tuple(logits.shape)}, got {tuple(target.shape)} of dtype {target.dtype}"
        )
    if target.dtype != logits.dtype:
        raise DTypeError(f"{who}: targets of dtype {target.dtype} for logits of dtype {logits.dtype}")
    return False

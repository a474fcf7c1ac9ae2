"""Free input checks (shape, dtype, namespace, device) with messages naming the culprit.

None of these reads array values, so none synchronises with the device.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

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

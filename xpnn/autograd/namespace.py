"""The recording namespace: the Array API standard's functions, differentiable on Tensors.

``array_api_compat.array_namespace(tensor)`` (and :func:`xpnn.backend.namespace`) return it,
so plain Array API code such as ``xp = array_namespace(x); xp.sum(xp.exp(x) * w, axis=1)``
records a graph when ``x`` or ``w`` is a :class:`~xpnn.Tensor`: the same code is its own
derivative. Each function with a Tensor argument runs on the arrays and records a node;
functions without a gradient (``argmax``, ``zeros_like``, comparisons, ``isfinite``) take the
tensors' arrays and return plain arrays; with no Tensor argument, every call is the wrapped
namespace's own.

It covers the standard functions xpnn's own layer and loss equations call (the tests check
each layer's hand-written backward against the recorded gradient of its plain forward).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn.autograd.structure import axis_index

Array = Any

_BINARY = {"add": "__add__", "subtract": "__sub__", "multiply": "__mul__", "divide": "__truediv__",
           "matmul": "__matmul__"}  # fmt: skip


class RecordingNamespace:
    """The namespace ``xp`` with every differentiable function recording on Tensors."""

    def __init__(self, xp: Any, tensor_type: Any, apply: Callable[..., Any]) -> None:
        self._xp, self._tensor, self._apply = xp, tensor_type, apply
        self.__name__ = f"xpnn.recording({getattr(xp, '__name__', xp)})"

    def _any(self, *args: Any) -> Any:
        """The first Tensor among ``args`` (lists and tuples searched too), or None."""
        for a in args:
            if isinstance(a, self._tensor):
                return a
            if isinstance(a, list | tuple):
                found = self._any(*a)
                if found is not None:
                    return found
        return None

    def _plain(self, a: Any) -> Any:
        if isinstance(a, self._tensor):
            return a.value
        if isinstance(a, list | tuple):
            return type(a)(self._plain(x) for x in a)
        return a

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._xp, name)
        if not callable(target) or isinstance(target, type):
            return target  # dtypes, constants, classes
        method = getattr(type(self), "_" + name, None)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._any(*args, *kwargs.values()) is None:
                return target(*args, **kwargs)
            if method is not None:
                return method(self, *args, **kwargs)
            return target(*self._plain(args), **{k: self._plain(v) for k, v in kwargs.items()})

        call.__name__ = name
        setattr(self, name, call)  # the next lookup finds it without __getattr__
        return call

    # -- the differentiable functions (``_name``: called where a Tensor argument is present) ---------
    def _asarray(self, obj: Any, **kwargs: Any) -> Any:
        if isinstance(obj, self._tensor) and not kwargs.get("copy"):
            return obj
        return self._apply("astype", self._as_tensor(obj), dtype=kwargs.get("dtype") or obj.dtype)

    def _as_tensor(self, x: Any) -> Any:
        return x if isinstance(x, self._tensor) else self._tensor(x)

    def _unary(self, name: str, x: Any) -> Any:
        return getattr(self._as_tensor(x), name)()

    def _exp(self, x: Any) -> Any:
        return self._unary("exp", x)

    def _log(self, x: Any) -> Any:
        return self._unary("log", x)

    def _sqrt(self, x: Any) -> Any:
        return self._unary("sqrt", x)

    def _tanh(self, x: Any) -> Any:
        return self._unary("tanh", x)

    def _abs(self, x: Any) -> Any:
        return self._unary("abs", x)

    def _negative(self, x: Any) -> Any:
        return -self._as_tensor(x)

    def _positive(self, x: Any) -> Any:
        return x

    def _square(self, x: Any) -> Any:
        x = self._as_tensor(x)
        return x * x

    def _binary(self, name: str, a: Any, b: Any) -> Any:
        if isinstance(a, self._tensor):
            return getattr(a, _BINARY[name])(b)
        return getattr(b, "__r" + _BINARY[name][2:])(a)

    def _add(self, a: Any, b: Any) -> Any:
        return self._binary("add", a, b)

    def _subtract(self, a: Any, b: Any) -> Any:
        return self._binary("subtract", a, b)

    def _multiply(self, a: Any, b: Any) -> Any:
        return self._binary("multiply", a, b)

    def _divide(self, a: Any, b: Any) -> Any:
        return self._binary("divide", a, b)

    def _matmul(self, a: Any, b: Any) -> Any:
        return self._binary("matmul", a, b)

    def _pow(self, a: Any, b: Any) -> Any:
        return self._as_tensor(a) ** b if not isinstance(b, self._tensor) else b.__rpow__(a)

    def _maximum(self, a: Any, b: Any) -> Any:
        return self._apply("maximum", a, b)

    def _minimum(self, a: Any, b: Any) -> Any:
        return self._apply("minimum", a, b)

    def _where(self, condition: Any, a: Any, b: Any) -> Any:
        return self._apply("where", a, b, condition=self._plain(condition))

    def _clip(self, x: Any, /, min: Any = None, max: Any = None) -> Any:
        return self._as_tensor(x).clip(min, max)

    def _reduce(self, name: str, x: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        return self._apply(name, self._as_tensor(x), axis=axis, keepdims=keepdims, **kwargs)

    def _sum(self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        out = self._reduce("sum", x, axis, keepdims)
        return out if dtype is None or dtype == out.dtype else out.astype(dtype)

    def _mean(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("mean", x, axis, keepdims)

    def _max(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("max", x, axis, keepdims)

    def _min(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("min", x, axis, keepdims)

    def _var(self, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False) -> Any:
        return self._reduce("var", x, axis, keepdims, correction=correction)

    def _std(self, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False) -> Any:
        return self._var(x, axis=axis, correction=correction, keepdims=keepdims).sqrt()

    def _astype(self, x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
        if not self._xp.isdtype(dtype, "real floating"):
            return self._xp.astype(self._plain(x), dtype)  # no gradient through an integer cast
        return self._apply("astype", self._as_tensor(x), dtype=dtype)

    def _reshape(self, x: Any, /, shape: Any, *, copy: Any = None) -> Any:
        return self._as_tensor(x).reshape(tuple(shape))

    def _permute_dims(self, x: Any, /, axes: Any) -> Any:
        return self._as_tensor(x).transpose(tuple(axes))

    def _matrix_transpose(self, x: Any, /) -> Any:
        return self._as_tensor(x).mT

    def _expand_dims(self, x: Any, /, *, axis: int = 0) -> Any:
        return self._as_tensor(x).expand_dims(axis)

    def _squeeze(self, x: Any, /, axis: Any) -> Any:
        return self._as_tensor(x).squeeze(axis)

    def _moveaxis(self, x: Any, source: int, destination: int, /) -> Any:
        x = self._as_tensor(x)
        source, destination = axis_index(source, x.ndim), axis_index(destination, x.ndim)
        order = [a for a in range(x.ndim) if a != source]
        order.insert(destination, source)
        return x.transpose(tuple(order))

    def _broadcast_to(self, x: Any, /, shape: Any) -> Any:
        return self._apply("broadcast_to", self._as_tensor(x), shape=tuple(shape))

    def _stack(self, arrays: Any, /, *, axis: int = 0) -> Any:
        return self._apply("stack", *self._first_tensor_first(arrays), axis=axis)

    def _concat(self, arrays: Any, /, *, axis: int | None = 0) -> Any:
        if axis is None:
            arrays, axis = [self._as_tensor(a).reshape(-1) for a in arrays], 0
        return self._apply("concat", *self._first_tensor_first(arrays), axis=axis)

    def _first_tensor_first(self, arrays: Any) -> list[Any]:
        """The operands with the first one a Tensor (its namespace is the one matched to)."""
        arrays = list(arrays)
        if not isinstance(arrays[0], self._tensor):
            arrays[0] = self._tensor(arrays[0])
        return arrays

    def _take(self, x: Any, indices: Any, /, *, axis: int | None = None) -> Any:
        x = self._as_tensor(x)
        if axis is None:
            x, axis = x.reshape(-1), 0
        return self._apply("take", x, indices=self._plain(indices), axis=axis)

    def _take_along_axis(self, x: Any, indices: Any, /, *, axis: int = -1) -> Any:
        return self._apply("take_along_axis", self._as_tensor(x), indices=self._plain(indices), axis=axis)


_CACHE: dict[int, RecordingNamespace] = {}


def recording_namespace(xp: Any, tensor_type: type, apply: Callable[..., Any]) -> RecordingNamespace:
    """The recording namespace over ``xp`` (one per namespace)."""
    found = _CACHE.get(id(xp))
    if found is None:
        found = _CACHE[id(xp)] = RecordingNamespace(xp, tensor_type, apply)
    return found

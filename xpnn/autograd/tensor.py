"""Tensor: an array of any Array API namespace that records what is computed from it.

``Tensor(array, requires_grad=False)`` wraps the array without copying it. Every operation
on tensors (operators, methods, :mod:`xpnn.functional`, and the standard functions of the
namespace ``t.__array_namespace__()`` returns) computes its result on the plain arrays and,
where some input needs a gradient and grad mode is on, records one node of the tape
(:mod:`xpnn.autograd.graph`) with the backward rule of :mod:`xpnn.autograd.ops`.

Operands: another Tensor, a Python number, or an array of the same namespace (a constant).
Two namespaces or devices in one operation, or float32 with float64, raise a named error:
the standard's promotion would turn float32 into float64 without a word.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterator
from typing import Any

from xpnn.autograd import ops, structure
from xpnn.autograd.graph import Node, _mode, run_backward
from xpnn.autograd.namespace import recording_namespace
from xpnn.backend import backend_name, device_of, namespace
from xpnn.checks import is_floating
from xpnn.errors import BackendMismatchError, DTypeError, GradientError, ShapeError

Array = Any
Axis = int | tuple[int, ...] | None


class Tensor:
    """An array (``value``) with its gradient (``grad``) and the node that made it (``node``).

    ``requires_grad``: a leaf whose gradient ``backward`` adds into ``.grad``. Results of
    operations on such tensors require grad too and carry the node that made them;
    comparisons and ``argmax`` give plain arrays. ``ndarray * tensor`` comes to the tensor
    (``__array_ufunc__ = None``).
    """

    __slots__ = ("__weakref__", "grad", "node", "requires_grad", "value")
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, value: Array, requires_grad: bool = False) -> None:
        if isinstance(value, Tensor):
            value = value.value
        if value is not None:
            try:
                namespace(value)
            except TypeError:
                raise BackendMismatchError(
                    f"Tensor: expected an array of an Array API namespace, got {type(value).__name__}"
                ) from None
        self.value: Array = value
        self.grad: Array | None = None
        self.node: Node | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad = True
            if value is not None and not is_floating(value):
                raise DTypeError(
                    f"Tensor: only floating-point tensors can require grad, got dtype {value.dtype}"
                )

    # -- what it is -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape, a tuple of ints."""
        return tuple(self.value.shape)

    @property
    def dtype(self) -> Any:
        """The array's dtype (of its namespace)."""
        return self.value.dtype

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return int(self.value.ndim)

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.value.shape)

    @property
    def device(self) -> Any:
        """The array's device."""
        return device_of(self.value)

    @property
    def is_leaf(self) -> bool:
        """True for a tensor no recorded operation made (a leaf of the graph)."""
        return self.node is None

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        """The recording namespace: the standard's functions, differentiable on tensors."""
        return recording_namespace(namespace(self.value), Tensor, apply)

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        grad = f", node={self.node.name}" if self.node is not None else ""
        grad += ", requires_grad=True" if self.requires_grad and self.node is None else ""
        return f"Tensor({self.value!r}{grad})"

    __hash__ = object.__hash__  # identity, although == compares elementwise

    # -- host values (each a synchronisation) -------------------------------------------------------
    def item(self) -> float:
        """The value of a one-element tensor as a host float (waits for the device)."""
        if self.size != 1:
            raise ShapeError(f"Tensor.item: expected a tensor of one element, got shape {self.shape}")
        return float(self.value.reshape(()) if hasattr(self.value, "reshape") else self.value)

    def __float__(self) -> float:
        return self.item()

    def __bool__(self) -> bool:
        return bool(self.value)

    # -- the graph --------------------------------------------------------------------------------
    def detach(self) -> Tensor:
        """The same array, cut from the graph (requires no grad)."""
        return Tensor(self.value)

    def accumulate(self, grad: Array) -> None:
        """Add ``grad`` into ``.grad`` (set it where None), never writing into an array that
        may be shared (a backward can hand one array to several tensors)."""
        self.grad = grad if self.grad is None else self.grad + grad

    def gradient_out(self) -> Array | None:
        """Where an operation may write this tensor's next gradient directly (see Parameter)."""
        return None

    def backward(self, grad: Array | None = None, *, retain_graph: bool = False) -> None:
        """Add d(self)/d(leaf), times ``grad``, into every leaf's ``.grad``.

        ``grad`` (dL/dself, same shape, dtype and namespace) may be left out for a 0-d tensor
        only (it is then 1). Without ``retain_graph`` the graph's saved arrays are freed.
        """
        if not self.requires_grad:
            raise GradientError(
                "backward: this tensor does not require a gradient (no input of the computation "
                "that made it requires one, or it was made under no_grad)"
            )
        xp = namespace(self.value)
        if grad is None:
            if self.ndim != 0:
                raise GradientError(
                    f"backward: grad can be left out only for a 0-d tensor, got shape {self.shape}; "
                    "pass grad= (dL/dtensor) or reduce to a scalar first"
                )
            grad = xp.ones((), dtype=self.dtype, device=self.device)
        else:
            grad = grad.value if isinstance(grad, Tensor) else grad
            _check_same_kind("backward", "grad", grad, self.value)
            if grad.dtype != self.dtype:
                raise DTypeError(f"backward: grad has dtype {grad.dtype}, the tensor's is {self.dtype}")
            if tuple(grad.shape) != self.shape:
                raise ShapeError(f"backward: expected grad of shape {self.shape}, got {tuple(grad.shape)}")
        run_backward(self, grad, retain_graph=retain_graph)

    # -- operators --------------------------------------------------------------------------------
    # With a Python number on one side the node has one input and the rule needs no broadcasting
    # (a number never stretches the tensor): the chain of small elementwise ops costs the tape
    # ~1 us less per op than the generic two-operand path (benchmarks/autograd.py, case (a)).
    # The number is kept in the node's options (``number``: left, right) for exporters.
    def __add__(self, other: Any) -> Tensor:
        if type(other) is float or type(other) is int:
            return _number_op(self.value + other, ops.identity_vjp, self, None, "add", (None, other))
        return _arith(self, other, "add")

    def __radd__(self, other: Any) -> Tensor:
        if type(other) is float or type(other) is int:
            return _number_op(other + self.value, ops.identity_vjp, self, None, "add", (other, None))
        return _arith(other, self, "add")

    def __sub__(self, other: Any) -> Tensor:
        if type(other) is float or type(other) is int:
            return _number_op(self.value - other, ops.identity_vjp, self, None, "sub", (None, other))
        return _arith(self, other, "sub")

    def __rsub__(self, other: Any) -> Tensor:
        if type(other) is float or type(other) is int:
            return _number_op(other - self.value, ops.neg_vjp, self, None, "sub", (other, None))
        return _arith(other, self, "sub")

    def __mul__(self, other: Any) -> Tensor:
        if type(other) is float or type(other) is int:
            return _number_op(self.value * other, ops.scale_vjp, self, other, "mul", (None, other))
        return _arith(self, other, "mul")

    def __rmul__(self, other: Any) -> Tensor:
        if type(other) is float or type(other) is int:
            return _number_op(other * self.value, ops.scale_vjp, self, other, "mul", (other, None))
        return _arith(other, self, "mul")

    def __truediv__(self, other: Any) -> Tensor:
        if type(other) is float or type(other) is int:
            return _number_op(self.value / other, ops.divide_by_vjp, self, other, "div", (None, other))
        return _arith(self, other, "div")

    def __rtruediv__(self, other: Any) -> Tensor:
        return _arith(other, self, "div")

    def __matmul__(self, other: Any) -> Tensor:
        return _arith(self, other, "matmul")

    def __rmatmul__(self, other: Any) -> Tensor:
        return _arith(other, self, "matmul")

    def __neg__(self) -> Tensor:
        return record(-self.value, ops.neg_vjp, (self,), None, "neg")

    def __pos__(self) -> Tensor:
        return self

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise DTypeError(f"Tensor ** exponent: expected a Python number, got {type(exponent).__name__}")
        return record(self.value**exponent, ops.pow_vjp, (self,), (self.value, exponent), "pow")

    def __rpow__(self, base: Any) -> Tensor:
        """``base ** t`` for a positive Python number: ``exp(t * log(base))``."""
        if isinstance(base, bool) or not isinstance(base, numbers.Real) or base <= 0:
            raise DTypeError(f"base ** Tensor: expected a positive Python number, got {base!r}")
        return (self * math.log(base)).exp()

    # comparisons: plain boolean arrays, never recorded
    def __lt__(self, other: Any) -> Array:
        return self.value < plain(other)

    def __le__(self, other: Any) -> Array:
        return self.value <= plain(other)

    def __gt__(self, other: Any) -> Array:
        return self.value > plain(other)

    def __ge__(self, other: Any) -> Array:
        return self.value >= plain(other)

    def __eq__(self, other: Any) -> Array:  # type: ignore[override]
        return self.value == plain(other)

    def __ne__(self, other: Any) -> Array:  # type: ignore[override]
        return self.value != plain(other)

    def __getitem__(self, index: Any) -> Tensor:
        """Slices, integers, None and ``...``; or one integer array (along the first axis, or
        with full slices before it): the gradient of repeated indices adds up."""
        return getitem(self, index)

    # -- elementwise functions --------------------------------------------------------------------
    def exp(self) -> Tensor:
        """``e ** x``, elementwise."""
        y = namespace(self.value).exp(self.value)
        return record(y, ops.exp_vjp, (self,), y, "exp")

    def log(self) -> Tensor:
        """The natural logarithm, elementwise."""
        return record(namespace(self.value).log(self.value), ops.log_vjp, (self,), self.value, "log")

    def sqrt(self) -> Tensor:
        """The square root, elementwise."""
        y = namespace(self.value).sqrt(self.value)
        return record(y, ops.sqrt_vjp, (self,), y, "sqrt")

    def tanh(self) -> Tensor:
        """The hyperbolic tangent, elementwise."""
        y = namespace(self.value).tanh(self.value)
        return record(y, ops.tanh_vjp, (self,), y, "tanh")

    def abs(self) -> Tensor:
        """``|x|``, elementwise; the gradient is ``sign(x)`` (0 at 0)."""
        return record(namespace(self.value).abs(self.value), ops.abs_vjp, (self,), self.value, "abs")

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        """``min <= x <= max`` (either may be None); the gradient passes where x is inside."""
        xp, x = namespace(self.value), self.value
        y, inside = x, None
        if min is not None:
            y, inside = xp.maximum(y, min), x >= min
        if max is not None:
            y = xp.minimum(y, max)
            inside = x <= max if inside is None else inside & (x <= max)
        return self if inside is None else record(y, ops.mask_vjp, (self,), inside, "clip")

    # -- reductions -------------------------------------------------------------------------------
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The sum over ``axis`` (None: every axis)."""
        return apply("sum", self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The mean over ``axis`` (None: every axis)."""
        return apply("mean", self, axis=axis, keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The maximum; tied elements share the gradient equally (torch's ``amax``)."""
        return apply("max", self, axis=axis, keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The minimum; tied elements share the gradient equally (torch's ``amin``)."""
        return apply("min", self, axis=axis, keepdims=keepdims)

    def var(self, axis: Axis = None, keepdims: bool = False, *, correction: float = 0.0) -> Tensor:
        """The variance (the standard's default ``correction=0``; torch's ``var`` uses 1)."""
        return apply("var", self, axis=axis, keepdims=keepdims, correction=correction)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Array:
        """The index of the maximum along ``axis``: a plain integer array (not recorded)."""
        return namespace(self.value).argmax(self.value, axis=axis, keepdims=keepdims)

    # -- shape ------------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        """``t.reshape(2, 3)`` or ``t.reshape((2, 3))`` (one axis may be -1)."""
        target = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        return reshape(self, target)

    def transpose(self, *axes: int) -> Tensor:
        """The axes reversed, or permuted as given (``t.transpose(0, 2, 1)``)."""
        order = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], tuple | list) else axes
        return permute(self, order or tuple(range(self.ndim - 1, -1, -1)))

    @property
    def T(self) -> Tensor:
        """The transpose of a 2-D tensor (``.mT`` swaps the last two axes of any)."""
        if self.ndim != 2:
            raise ShapeError(
                f"Tensor.T: expected a 2-D tensor, got shape {self.shape} (use .mT or transpose)"
            )
        return permute(self, (1, 0))

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped."""
        order = (*range(self.ndim - 2), self.ndim - 1, self.ndim - 2)
        return permute(self, order)

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        """The tensor without the given axes of length 1 (None: every axis of length 1)."""
        axes = range(self.ndim) if axis is None else ((axis,) if isinstance(axis, int) else axis)
        drop = {structure.axis_index(a, self.ndim) for a in axes if axis is not None or self.shape[a] == 1}
        for a in drop:
            if self.shape[a] != 1:
                raise ShapeError(
                    f"Tensor.squeeze: axis {a} has size {self.shape[a]}, not 1 (shape {self.shape})"
                )
        return reshape(self, tuple(n for i, n in enumerate(self.shape) if i not in drop))

    def expand_dims(self, axis: int) -> Tensor:
        """The tensor with a new axis of length 1 at ``axis``."""
        shape = list(self.shape)
        shape.insert(structure.axis_index(axis, self.ndim + 1), 1)
        return reshape(self, tuple(shape))

    def astype(self, dtype: Any) -> Tensor:
        """The tensor cast to ``dtype``; the gradient is cast back to this tensor's dtype."""
        return apply("astype", self, dtype=dtype)


# -- recording ------------------------------------------------------------------------------------
def record(
    value: Array,
    vjp: Any,
    inputs: tuple[Any, ...],
    saved: Any,
    name: str,
    options: dict[str, Any] | None = None,
) -> Tensor:
    """The result tensor of an operation; a node is recorded where grad mode is on and an input
    requires grad (``inputs``: tensors, or None for constants; ``options``: kept for exporters)."""
    out = Tensor.__new__(Tensor)
    out.value, out.grad, out.node, out.requires_grad = value, None, None, False
    if _mode[0]:
        for t in inputs:
            if t is not None and t.requires_grad:
                kept = inputs if len(inputs) == 1 else tuple([u if u is not None and u.requires_grad else None
                                                              for u in inputs])  # fmt: skip
                out.node = Node(vjp, kept, saved, name)
                out.node.options = options
                out.requires_grad = True
                break
    return out


def _number_op(value: Array, vjp: Any, t: Tensor, saved: Any, name: str, number: tuple[Any, Any]) -> Tensor:
    """A one-input node of ``t`` with a Python number on one side (``number``: left, right), the
    number kept in its options for exporters."""
    return record(value, vjp, (t,), saved, name, {"number": number})


def constant(value: Array) -> Tensor:
    """``value`` as a tensor that needs no gradient (a plain array passed to a module)."""
    return value if isinstance(value, Tensor) else Tensor(value)


def plain(x: Any) -> Any:
    """A Tensor's array, anything else as it is: what a computation reads without recording
    (running statistics, a random mask's device and dtype)."""
    return x.value if isinstance(x, Tensor) else x


def _check_same_kind(who: str, what: str, x: Array, like: Array) -> None:
    """``x`` in ``like``'s namespace and on its device (NumPy's 0-d scalars count as NumPy)."""
    if namespace(x) is not namespace(like) or device_of(x) != device_of(like):
        raise BackendMismatchError(
            f"{who}: {what} is an array of backend {backend_name(x)!r} on device {device_of(x)}, "
            f"the tensor's is {backend_name(like)!r} on device {device_of(like)}"
        )


def _operand(who: str, x: Any, like: Array) -> tuple[Any, Tensor | None]:
    """(the array or number, the tensor or None) of one operand of a binary operation."""
    if isinstance(x, Tensor):
        value, tensor = x.value, x
    elif isinstance(x, numbers.Number) and not isinstance(x, bool | complex) and not hasattr(x, "dtype"):
        return x, None
    else:
        value, tensor = x, None
        try:
            namespace(value)
        except TypeError:
            raise BackendMismatchError(
                f"{who}: cannot combine a Tensor with a {type(x).__name__} (expected a Tensor, a Python "
                "number or an array of the tensor's namespace)"
            ) from None
    if type(value) is not type(like) or type(value).__module__ != "numpy":
        _check_same_kind(who, "an operand", value, like)
    if value.dtype != like.dtype:
        value = _matched(who, value, like)
    return value, tensor


def _matched(who: str, value: Array, like: Array) -> Array:
    """``value`` where its dtype differs from ``like``'s: integer and boolean constants take
    the floating dtype; two floating dtypes are refused."""
    xp = namespace(like)
    floating = [xp.isdtype(v.dtype, "real floating") for v in (value, like)]
    if all(floating):
        raise DTypeError(
            f"{who}: operands of dtypes {like.dtype} and {value.dtype}; cast one explicitly "
            "(no silent promotion of float32 to float64)"
        )
    if floating[1]:
        return xp.astype(value, like.dtype)
    return value


_FORWARD = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "matmul": operator.matmul,
}
_VJP = {
    "add": ops.add_vjp,
    "sub": ops.sub_vjp,
    "mul": ops.mul_vjp,
    "div": ops.div_vjp,
    "matmul": ops.matmul_vjp,
}
_SAVES_SHAPES = {"add", "sub"}


def _arith(x: Any, y: Any, op: str) -> Tensor:
    """A binary arithmetic operation with at least one tensor operand."""
    like = x.value if isinstance(x, Tensor) else y.value
    a, ta = _operand(op, x, like)
    b, tb = _operand(op, y, like)
    try:
        value = _FORWARD[op](a, b)
    except Exception as error:  # broadcasting or matmul shapes: name both
        raise ShapeError(
            f"Tensor {op}: shapes {ops._shape(a)} and {ops._shape(b)} do not fit ({error})"
        ) from None
    saved = (ops._shape(a), ops._shape(b)) if op in _SAVES_SHAPES else (a, b)
    constants = None  # a constant operand, kept for exporters (the backward reads only shapes)
    const_a, const_b = ta is None or not ta.requires_grad, tb is None or not tb.requires_grad
    if const_a or const_b:
        constants = {"constants": (a if const_a else None, b if const_b else None)}
    return record(value, _VJP[op], (ta, tb), saved, op, constants)


def reshape(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    return apply("reshape", t, shape=tuple(shape))


def permute(t: Tensor, axes: tuple[int, ...]) -> Tensor:
    inside = all(-t.ndim <= a < t.ndim for a in axes)  # an axis out of range is never wrapped round
    if not inside or sorted(a % t.ndim for a in axes) != list(range(t.ndim)):
        raise ShapeError(f"Tensor.transpose: axes {axes} are not a permutation of a {t.ndim}-D tensor's")
    return apply("permute_dims", t, axes=tuple(a % t.ndim for a in axes))


def getitem(t: Tensor, index: Any) -> Tensor:
    """``t[index]``: basic indexing, or one integer array along one axis (a ``take``)."""
    index = plain(index)
    items = index if isinstance(index, tuple) else (index,)
    arrays = [i for i, item in enumerate(items) if hasattr(item, "dtype") or isinstance(item, list)]
    if not arrays:
        return apply("getitem", t, index=index)
    position = arrays[0]
    full = all(isinstance(item, slice) and item == slice(None) for item in items[:position])
    if len(arrays) > 1 or not full or any(item is Ellipsis or item is None for item in items):
        raise ShapeError(
            f"Tensor indexing: one integer array, along the first axis or after full slices ':' "
            f"only, got {index!r:.80} (use take or several steps)"
        )
    xp = namespace(t.value)
    indices = items[position]
    indices = indices if hasattr(indices, "dtype") else xp.asarray(indices, device=t.device)
    if indices.dtype == xp.bool:
        raise ShapeError(
            "Tensor indexing: boolean masks select a data-dependent number of elements; use where"
        )
    rest = items[position + 1 :]
    out = apply("take", t, indices=indices, axis=position)
    return apply("getitem", out, index=(slice(None),) * (position + indices.ndim) + rest) if rest else out


def apply(name: str, *operands: Any, **options: Any) -> Tensor:
    """Run the operation ``name`` of :data:`OPERATIONS` on tensors, numbers or arrays (at least
    one a tensor) and record it; operands other than the first are matched to its namespace."""
    forward, vjp = OPERATIONS[name]
    first = next(o for o in operands if isinstance(o, Tensor))
    like = first.value
    values, tensors = [], []
    for o in operands:
        value, tensor = _operand(name, o, like) if o is not first else (like, first)
        values.append(value)
        tensors.append(tensor)
    try:
        value, saved = forward(namespace(like), *values, **options)
    except (ValueError, TypeError, IndexError, RuntimeError) as error:
        shapes = ", ".join(str(ops._shape(v)) for v in values)
        raise ShapeError(f"{name}: operands of shapes {shapes} do not fit ({error})") from None
    return record(value, vjp, tuple(tensors), saved, name, options)


OPERATIONS: dict[str, tuple[Any, Any]] = {
    "sum": (structure.sum_forward, structure.sum_vjp),
    "mean": (structure.mean_forward, structure.mean_vjp),
    "max": (structure.max_forward, structure.extreme_vjp),
    "min": (structure.min_forward, structure.extreme_vjp),
    "var": (structure.var_forward, structure.var_vjp),
    "astype": (structure.astype_forward, structure.cast_vjp),
    "reshape": (structure.reshape_forward, structure.reshape_vjp),
    "permute_dims": (structure.permute_forward, structure.permute_vjp),
    "broadcast_to": (structure.broadcast_forward, structure.broadcast_vjp),
    "where": (ops.where_forward, ops.pick_vjp),
    "maximum": (ops.maximum_forward, ops.pick_vjp),
    "minimum": (ops.minimum_forward, ops.pick_vjp),
    "stack": (structure.stack_forward, structure.stack_vjp),
    "concat": (structure.concat_forward, structure.stack_vjp),
    "take": (structure.take_forward, structure.take_vjp),
    "take_along_axis": (structure.take_along_axis_forward, structure.take_along_axis_vjp),
    "getitem": (structure.getitem_forward, structure.getitem_vjp),
}

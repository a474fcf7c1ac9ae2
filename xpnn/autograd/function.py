"""Function: a differentiable function whose backward is written by hand, beside its forward.

A subclass writes ``forward(ctx, *arrays, **options) -> array`` (plain Array API code on
arrays, keeping in ``ctx.saved`` what its backward needs) and ``backward(ctx, g) -> grads``
(one per array input, None where ``ctx.needs`` says none is wanted). ``apply`` runs it on
tensors or arrays and records ONE node per call: what a call saved belongs to that call
(DeZero's ``Function``, PyTorch's ``autograd.Function``), so a layer used twice in a graph
gets both gradients. Options (kernel size, training mode, ...) are keywords, kept on the
node for exporters only.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.graph import Node, _mode
from xpnn.autograd.tensor import Tensor
from xpnn.backend import backend_name, device_of
from xpnn.checks import is_floating
from xpnn.errors import BackendMismatchError, DTypeError

Array = Any


class Function:
    """Base class; see the module docstring. ``name`` names its nodes (``"linear"``)."""

    name = ""
    fresh_grads = False  # True: ``backward`` returns new arrays only (the next may write into them)

    @staticmethod
    def forward(ctx: Node, *arrays: Array, **options: Any) -> Array:
        """The output array for the input arrays, plain Array API code; keep in ``ctx.saved``
        what ``backward`` needs."""
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        """One gradient per array input, given ``g`` = dL/d(output); None where ``ctx.needs``
        says none is wanted."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **options: Any) -> Tensor:
        """The output as a Tensor, with one node recorded where an input requires grad and grad
        mode is on. ``args``: tensors, arrays or None (an absent optional input), all of one
        namespace and device (checked)."""
        values = [a.value if isinstance(a, Tensor) else a for a in args]
        check_same_place(cls.name or cls.__name__, values)
        tensors = tuple(a if isinstance(a, Tensor) and a.requires_grad else None for a in args)
        return cls._run(tensors, values, options, any(t is not None for t in tensors))

    @classmethod
    def call(cls, x: Tensor, params: tuple[Any, ...], options: dict[str, Any]) -> Tensor:
        """``apply(x, *params, **options)`` for a layer that has checked its input already
        (a plain loop: this runs for every layer of every step)."""
        live = x.requires_grad
        tensors, values = [x if live else None], [x.value]
        for p in params:
            if p is None or not p.requires_grad:
                tensors.append(None)
                values.append(None if p is None else p.value)
            else:
                tensors.append(p)
                values.append(p.value)
                live = True
        return cls._run(tuple(tensors), values, options, live)

    @classmethod
    def _run(cls, tensors: tuple[Any, ...], values: list[Any], options: dict[str, Any], live: bool) -> Tensor:
        ctx = Node(cls.backward, tensors, None, cls.name, cls.fresh_grads)
        ctx.options = options
        return output(ctx, cls.forward(ctx, *values, **options), live)

    @classmethod
    def context(cls) -> Node:
        """A fresh node for calling ``forward`` / ``backward`` on arrays directly (a layer's
        ``forward`` and ``backward`` of the NNFS book's style)."""
        return Node(cls.backward, (), None, cls.name)


def output(ctx: Node, value: Array, live: bool) -> Tensor:
    """The Tensor of ``value``, computed by the call ``ctx`` records: recorded (``ctx`` its
    node) where ``live`` (an input requires grad) and grad mode is on."""
    out = Tensor.__new__(Tensor)
    out.value = value
    out.grad, out.node, out.requires_grad = None, None, False
    if live and _mode[0]:
        out.node, out.requires_grad = ctx, True
    return out


def check_same_place(who: str, values: list[Any]) -> None:
    """Every array among ``values`` of one namespace and device, and every floating one of one
    dtype (None and numbers skipped): the standard's promotion would turn float32 into float64
    without a word, as the Tensor operations refuse to."""
    first = floating = None
    for v in values:
        if v is None or not hasattr(v, "shape"):
            continue
        if first is None:
            first = v
        elif type(v) is not type(first) or device_of(v) != device_of(first):
            raise BackendMismatchError(
                f"{who}: inputs on backends {backend_name(first)!r} (device {device_of(first)}) and "
                f"{backend_name(v)!r} (device {device_of(v)}); move them to one with .to() or from_host"
            )
        if is_floating(v):
            if floating is None:
                floating = v
            elif v.dtype != floating.dtype:
                raise DTypeError(
                    f"{who}: inputs of dtypes {floating.dtype} and {v.dtype}; cast one explicitly "
                    "(no silent promotion of float32 to float64)"
                )

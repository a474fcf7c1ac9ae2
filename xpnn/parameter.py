"""Parameter: an array that training updates, with its gradient."""

from __future__ import annotations

from typing import Any

from xpnn.backend import assign

Array = Any


class Parameter:
    """A trainable array and its gradient.

    ``value`` is an array of any Array API namespace; ``grad`` is ``None`` until a
    backward pass fills it. Backward passes *add* into ``grad`` (torch semantics), so
    gradients of several micro-batches accumulate until ``zero_grad`` sets it to ``None``.
    """

    __slots__ = ("grad", "name", "value")

    def __init__(self, value: Array, name: str = "") -> None:
        self.value = value
        self.grad: Array | None = None
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> Any:
        return self.value.dtype

    def accumulate(self, grad: Array) -> None:
        """Add ``grad`` into ``self.grad`` (set it where it is ``None``)."""
        if self.grad is None:
            self.grad = grad
        else:
            self.grad = assign(self.grad, self.grad + grad)

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.shape}, dtype={self.dtype})"

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

    __slots__ = ("grad", "grad_home", "name", "value")

    def __init__(self, value: Array, name: str = "") -> None:
        self.value = value
        self.grad: Array | None = None
        self.grad_home: Array | None = None  # set by a flat buffer: see ``gradient_out``
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

    def gradient_out(self) -> Array | None:
        """Where a layer may write this parameter's next gradient directly, or None.

        While an optimizer keeps the parameter in a flat buffer (:mod:`xpnn.optim.flat`), that is
        its view of the flat gradient buffer, so the optimizer need not gather the gradient;
        it is offered only while ``grad`` is None (a gradient being accumulated is added to).
        So, as with torch's ``zero_grad(set_to_none=False)``, the next backward after
        ``zero_grad`` overwrites the array that ``grad`` was: copy a gradient you keep.
        """
        return self.grad_home if self.grad is None else None

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.shape}, dtype={self.dtype})"

"""Parameter: a Tensor that training updates (a leaf that requires grad by default)."""

from __future__ import annotations

from typing import Any

from xpnn.autograd.tensor import Tensor
from xpnn.backend import assign

Array = Any


class Parameter(Tensor):
    """A trainable array and its gradient; IS a :class:`~xpnn.Tensor`.

    ``value`` is an array of any Array API namespace; ``grad`` is ``None`` until a backward
    fills it. Backward passes *add* into ``grad`` (torch semantics), so gradients of several
    micro-batches accumulate until ``zero_grad`` sets it to ``None``. ``requires_grad = False``
    freezes it: backward leaves its ``grad`` None and optimizers skip it.
    """

    __slots__ = ("grad_home", "name")

    def __init__(self, value: Array, name: str = "", *, requires_grad: bool = True) -> None:
        super().__init__(value, requires_grad=False)
        self.requires_grad = bool(requires_grad)
        self.grad_home: Array | None = None  # set by a flat buffer: see ``gradient_out``
        self.name = name

    def accumulate(self, grad: Array) -> None:
        """Add ``grad`` into ``self.grad`` (set it where it is ``None``); in place only into
        the array an optimizer's flat buffer owns (``grad_home``), never into a shared one."""
        if self.grad is None:
            self.grad = grad
        elif self.grad is self.grad_home:
            self.grad = assign(self.grad, self.grad + grad)
        else:
            self.grad = self.grad + grad

    def gradient_out(self) -> Array | None:
        """Where an operation may write this parameter's next gradient directly, or None.

        While an optimizer keeps the parameter in a flat buffer (:mod:`xpnn.optim.flat`), that is
        its view of the flat gradient buffer, so the optimizer need not gather the gradient;
        it is offered only while ``grad`` is None (a gradient being accumulated is added to).
        So, as with torch's ``zero_grad(set_to_none=False)``, the next backward after
        ``zero_grad`` overwrites the array that ``grad`` was: copy a gradient you keep.
        """
        return self.grad_home if self.grad is None else None

    def zero_grad(self) -> None:
        """Set ``.grad`` to None (the next backward sets it, then adds into it)."""
        self.grad = None

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        shape = None if self.value is None else self.shape
        dtype = None if self.value is None else self.dtype
        return f"Parameter({self.name!r}, shape={shape}, dtype={dtype}{frozen})"

"""Inverted dropout: in training, zero each element with probability ``rate`` and scale the
rest by ``1 / (1 - rate)``; the gradient is scaled by the same mask.

The mask is drawn on the device from an integer ``key`` (Decision 6: counter-based, e.g.
``(seed, epoch, step)``), never from a stateful generator, so a resumed run draws exactly
the masks of the uninterrupted one; and by position in the batch, so the ranks of a
data-parallel run, each drawing its rows of the global batch's mask, draw one process's mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.autograd.tensor import plain
from xpnn.backend import namespace, uniform

Array = Any


class Dropout(Function):
    name = "dropout"

    @staticmethod
    def forward(
        ctx: Node, x: Array, *, rate: float, key: Sequence[int], offset: int = 0, total: int = 0
    ) -> Array:
        """``offset``/``total``: ``x`` is the part ``[offset, offset + x.size)`` of a tensor of
        ``total`` elements (a data-parallel rank's rows of the global batch), whose mask it takes."""
        keep = (
            uniform(plain(x), tuple(x.shape), key, offset=offset, total=total) >= rate
        )  # a Tensor's: its array's
        mask = namespace(x).astype(keep, x.dtype) * (1.0 / (1.0 - rate))
        ctx.saved = mask
        return x * mask

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        return (g * ctx.saved,)

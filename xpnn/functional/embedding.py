"""Embedding lookup: row ``ids[...]`` of ``weight`` (num_embeddings, dim), as torch's ``embedding``.

``y[..., :] = weight[ids[...], :]`` (a ``take`` along axis 0), so ``y`` has shape
``ids.shape + (dim,)``. Backward: ``dweight[i] = sum of g[...] over the positions where
ids == i`` (a scatter-add: :func:`xpnn.backend.slices.add_at`; repeated ids add up). The ids
get no gradient.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.backend.slices import add_at

Array = Any


class Embedding(Function):
    name = "embedding"
    fresh_grads = True

    @staticmethod
    def forward(ctx: Node, ids: Array, weight: Array) -> Array:
        xp = namespace(weight)
        flat = xp.reshape(ids, (-1,))
        ctx.saved = (flat, tuple(weight.shape), weight.dtype)
        rows = xp.take(weight, flat, axis=0)
        return xp.reshape(rows, (*ids.shape, weight.shape[1]))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        flat, shape, dtype = ctx.saved
        if not ctx.needs[1]:
            return (None, None)
        xp = namespace(g)
        rows = xp.reshape(g, (-1, shape[1]))
        return (None, add_at(xp.zeros(shape, dtype=dtype, device=g.device), flat, rows))

"""Embedding lookup: row ``ids[...]`` of ``weight`` (num_embeddings, dim), as torch's ``embedding``.

``y[..., :] = weight[ids[...], :]`` (a ``take`` along axis 0), so ``y`` has shape
``ids.shape + (dim,)``. Backward: ``dweight[i] = sum of g[...] over the positions where
ids == i`` (a scatter-add: :func:`xpnn.backend.slices.add_at`; repeated ids add up). The ids
get no gradient.

Fast path (``fused``, NumPy, numba installed): the scatter-add as one loop, NumPy's ``add.at``
additions in its order (the same bits), without its per-index cost
(:func:`xpnn.kernels.transformer.embedding_backward`).
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.backend.slices import add_at
from xpnn.kernels import transformer as transformer_kernels

Array = Any


class Embedding(Function):
    name = "embedding"
    fresh_grads = True

    @staticmethod
    def forward(ctx: Node, ids: Array, weight: Array, *, fused: bool = True) -> Array:
        xp = namespace(weight)
        flat = xp.reshape(ids, (-1,))
        ctx.saved = (ids, flat, tuple(weight.shape), weight.dtype, fused)  # ids: for exporters
        rows = xp.take(weight, flat, axis=0)
        return xp.reshape(rows, (*ids.shape, weight.shape[1]))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        _, flat, shape, dtype, fused = ctx.saved
        if not ctx.needs[1]:
            return (None, None)
        xp = namespace(g)
        rows = xp.reshape(g, (-1, shape[1]))
        fast = transformer_kernels.embedding_backward(flat, rows, shape) if fused else None
        if fast is not None:
            return (None, fast)
        return (None, add_at(xp.zeros(shape, dtype=dtype, device=g.device), flat, rows))

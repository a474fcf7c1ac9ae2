"""Scaled dot-product attention, as torch's, and the same over the heads of a packed projection.

``s = scale * q @ k^T`` (``scale`` defaults to ``1 / sqrt(q.shape[-1])``), masked to ``-inf``
where the boolean ``mask`` is False (or above the diagonal when ``causal``: query ``i``
attends to keys ``j <= i``, torch's top-left alignment), ``p = softmax(s)`` along the keys
(shifted by the row maximum: stable for any scores), ``o = p @ v``. Backward:
``dv = p^T @ g``, ``dp = g @ v^T``, ``ds = p (dp - sum(dp p))`` along the keys (softmax's
Jacobian-vector product), ``dq = scale ds @ k``, ``dk = scale ds^T @ q``. A row whose every key
is masked out gives NaN, as torch's math backend does.

The causal mask is a boolean ``(time_q, time_k)`` array built once per namespace, device and
size and kept (:func:`causal_mask`), not per call.

:class:`HeadsAttention` is what :class:`~xpnn.MultiHeadAttention` records between its two
projections, as ONE node: the packed ``(batch, time, 3 * dim)`` output of the ``qkv``
projection is split into q, k and v (in that order) of ``heads`` heads each, attended, and
the heads merged back to ``(batch, time, dim)``; its backward stacks dq, dk, dv the same way.

Fast path (``fused``, NumPy float arrays, numba installed): the scale, mask and softmax in
two passes over the scores around NumPy's ``exp``, softmax's backward in one
(:mod:`xpnn.kernels.transformer`; equal to the plain path to float rounding), and the
products written straight into the merged heads (forward) and the packed gradient (backward)
by NumPy's ``matmul(..., out=)`` into strided views: no stack, no copy.
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import device_of, namespace
from xpnn.kernels import transformer as transformer_kernels

Array = Any

_CAUSAL: dict[tuple[Any, ...], Array] = {}  # (namespace, device, time_q, time_k) -> mask
_CAUSAL_KEEP = 32  # masks kept (a generation loop asks for each length once)


def causal_mask(xp: Any, device: Any, time_q: int, time_k: int) -> Array:
    """Boolean ``(time_q, time_k)``, True where key ``j <= i`` (query ``i``): kept per
    namespace, device and sizes, so a training step never builds one."""
    key = (id(xp), str(device), time_q, time_k)
    found = _CAUSAL.get(key)
    if found is None:
        if len(_CAUSAL) >= _CAUSAL_KEEP:
            _CAUSAL.pop(next(iter(_CAUSAL)))
        rows = xp.reshape(xp.arange(time_q, device=device), (time_q, 1))
        found = _CAUSAL[key] = rows >= xp.arange(time_k, device=device)
    return found


def combined_mask(
    xp: Any, like: Array, mask: Array | None, causal: bool, time_q: int, time_k: int
) -> Array | None:
    """The boolean mask the scores are masked with: ``mask``, the causal one, both or None."""
    if not causal:
        return mask
    lower = causal_mask(xp, device_of(like), time_q, time_k)
    return lower if mask is None else xp.logical_and(mask, lower)


def _product(a: Array, b: Array, out: Array | None) -> Array:
    """``a @ b``, written into ``out`` where one is given and the fast path takes it."""
    written = transformer_kernels.matmul_into(a, b, out) if out is not None else None
    return a @ b if written is None else written


def attend(
    q: Array, k: Array, v: Array, mask: Array | None, scale: float, fused: bool, out: Array | None = None
) -> tuple[Array, Array]:
    """``(softmax(scale q k^T masked) @ v, the probabilities)``; the product written into
    ``out`` (a view of the merged heads) where the fast path can."""
    xp = namespace(q)
    scores = q @ xp.matrix_transpose(k)
    p = transformer_kernels.masked_softmax(scores, mask, scale) if fused else None
    if p is None:
        scores = scores * scale
        if mask is not None:
            scores = xp.where(mask, scores, -float("inf"))
        e = xp.exp(scores - xp.max(scores, axis=-1, keepdims=True))
        p = e / xp.sum(e, axis=-1, keepdims=True)
    return _product(p, v, out if fused else None), p


def attend_backward(
    q: Array, k: Array, v: Array, p: Array, g: Array, scale: float, needs: tuple[bool, ...], fused: bool,
    out: tuple[Array | None, ...] = (None, None, None),
) -> tuple[Array | None, Array | None, Array | None]:  # fmt: skip
    """``(dq, dk, dv)`` of :func:`attend` (None where ``needs`` says none is wanted), each
    written into its ``out`` (views of the packed gradient) where the fast path can."""
    xp = namespace(g)
    out = out if fused else (None, None, None)
    dv = _product(xp.matrix_transpose(p), g, out[2]) if needs[2] else None
    if not (needs[0] or needs[1]):
        return None, None, dv
    dp = g @ xp.matrix_transpose(v)
    ds = transformer_kernels.softmax_backward(p, dp, scale) if fused else None
    if ds is None:
        ds = p * (dp - xp.sum(dp * p, axis=-1, keepdims=True)) * scale
    dq = _product(ds, k, out[0]) if needs[0] else None
    dk = _product(xp.matrix_transpose(ds), q, out[1]) if needs[1] else None
    return dq, dk, dv


class ScaledDotProductAttention(Function):
    """q (..., time_q, d), k (..., time_k, d), v (..., time_k, d_v) -> (..., time_q, d_v)."""

    name = "scaled_dot_product_attention"

    @staticmethod
    def forward(
        ctx: Node, q: Array, k: Array, v: Array, *, mask: Array | None = None, causal: bool = False,
        scale: float | None = None, fused: bool = True,
    ) -> Array:  # fmt: skip
        xp = namespace(q)
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        mask = combined_mask(xp, q, mask, causal, q.shape[-2], k.shape[-2])
        out, p = attend(q, k, v, mask, scale, fused)
        ctx.saved = (q, k, v, p, scale, fused)
        return out

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        q, k, v, p, scale, fused = ctx.saved
        return attend_backward(q, k, v, p, g, scale, ctx.needs, fused)


class HeadsAttention(Function):
    """Packed qkv (batch, time, 3 * dim) -> attended heads merged to (batch, time, dim)."""

    name = "multi_head_attention"
    fresh_grads = True

    @staticmethod
    def forward(
        ctx: Node, qkv: Array, *, heads: int, mask: Array | None = None, causal: bool = False,
        fused: bool = True,
    ) -> Array:  # fmt: skip
        xp = namespace(qkv)
        batch, time, width = qkv.shape
        dim = width // 3
        # (batch, time, 3, heads, d) -> (3, batch, heads, time, d): views of the packed array
        split = xp.permute_dims(xp.reshape(qkv, (batch, time, 3, heads, dim // heads)), (2, 0, 3, 1, 4))
        q, k, v = split[0, ...], split[1, ...], split[2, ...]
        scale = (dim // heads) ** -0.5
        mask = combined_mask(xp, qkv, mask, causal, time, time)
        merged = transformer_kernels.empty_for(qkv, (batch, time, heads, dim // heads)) if fused else None
        target = None if merged is None else xp.permute_dims(merged, (0, 2, 1, 3))
        out, p = attend(q, k, v, mask, scale, fused, target)
        ctx.saved = (q, k, v, p, scale, fused)
        if merged is None or out is not target:
            merged = xp.permute_dims(out, (0, 2, 1, 3))
        return xp.reshape(merged, (batch, time, dim))

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        q, k, v, p, scale, fused = ctx.saved
        xp = namespace(g)
        batch, heads, time, d = q.shape
        g_heads = xp.permute_dims(xp.reshape(g, (batch, time, heads, d)), (0, 2, 1, 3))
        packed = transformer_kernels.empty_for(g, (batch, time, 3, heads, d)) if fused else None
        views = (None,) * 3 if packed is None else tuple(xp.permute_dims(packed, (2, 0, 3, 1, 4)))
        grads = attend_backward(q, k, v, p, g_heads, scale, (True, True, True), fused, views)
        if packed is None or any(a is not b for a, b in zip(grads, views, strict=True)):
            packed = xp.permute_dims(xp.stack(grads, axis=0), (1, 3, 0, 2, 4))  # (batch, time, 3, heads, d)
        return (xp.reshape(packed, (batch, time, 3 * heads * d)),)

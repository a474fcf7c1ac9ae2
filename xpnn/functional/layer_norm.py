"""Layer normalization over the last axis, as torch's ``layer_norm(x, (dim,), weight, bias, eps)``.

Per row of ``n`` features: ``mean = sum(x) / n``, ``var = sum((x - mean)**2) / n`` (biased),
``r = 1 / sqrt(var + eps)``, ``xhat = (x - mean) r``, ``y = weight * xhat + bias``.
Backward, with ``d = g * weight``: ``dx = r (d - mean(d) - xhat mean(d xhat))`` per row,
``dweight = sum over rows of g xhat``, ``dbias = sum over rows of g``.

Fast path (``fused``, C-contiguous NumPy float arrays, numba installed): each row's
statistics, ``xhat`` and ``y`` in one pass, and ``dx`` with its two row means and the
``dweight``/``dbias`` column sums in one pass (:mod:`xpnn.kernels.transformer`; the
column sums are NumPy's bits, the rest equal to the plain path to float rounding: the row
sums add in another order).
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.kernels import transformer as transformer_kernels

Array = Any


def _leading(x: Array) -> tuple[int, ...]:
    return tuple(range(x.ndim - 1))


class LayerNorm(Function):
    name = "layer_norm"
    fresh_grads = True

    @staticmethod
    def forward(
        ctx: Node, x: Array, weight: Array | None = None, bias: Array | None = None, *, eps: float = 1e-5,
        fused: bool = True,
    ) -> Array:  # fmt: skip
        fast = transformer_kernels.layer_norm(x, weight, bias, eps) if fused else None
        if fast is not None:
            y, xhat, rstd = fast
        else:
            xp = namespace(x)
            centered = x - xp.mean(x, axis=-1, keepdims=True)
            rstd = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=-1, keepdims=True) + eps)
            xhat = centered * rstd
            y = xhat if weight is None else xhat * weight
            y = y if bias is None else y + bias
        ctx.saved = (xhat, rstd, weight, fused)
        return y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        xhat, rstd, weight, fused = ctx.saved
        needs = ctx.needs
        want_weight, want_bias = len(needs) > 1 and needs[1], len(needs) > 2 and needs[2]
        fast = transformer_kernels.layer_norm_backward(g, xhat, rstd, weight) if fused and needs[0] else None
        if fast is not None:
            dx, dweight, dbias = fast
            return (dx, dweight if want_weight else None, dbias if want_bias else None)
        xp = namespace(g)
        dweight = xp.sum(g * xhat, axis=_leading(g)) if want_weight else None
        dbias = xp.sum(g, axis=_leading(g)) if want_bias else None
        dx = None
        if needs[0]:
            d = g if weight is None else g * weight
            mean_d = xp.mean(d, axis=-1, keepdims=True)
            mean_dx = xp.mean(d * xhat, axis=-1, keepdims=True)
            dx = rstd * (d - mean_d - xhat * mean_dx)
        return (dx, dweight, dbias)

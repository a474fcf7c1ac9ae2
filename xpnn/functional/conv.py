"""2-D convolution (cross-correlation, as torch's) over NCHW images, by im2col and one matmul.

Forward, for each of the ``groups`` groups ``g`` (``Cg = C_in / groups`` input channels,
``Og = C_out / groups`` outputs): ``y[n, g] = W[g] @ cols[n, g] + b`` where ``cols[n, g]``
(Cg*kh*kw, H_out*W_out) holds every window's pixels (:func:`xpnn.functional.windows.im2col`).
Backward: ``dW[g] = sum_n dy[n, g] @ cols[n, g].T``, ``db = sum dy`` over (n, h, w),
``dcols = W[g].T @ dy[n, g]`` and ``dx = col2im(dcols)``.

Fast path (``fused``, NumPy, one group): :mod:`xpnn.kernels.conv`, channel-major, in chunks of
the batch whose im2col stays in the cache (numba's im2col/col2im loops where installed); the
same numbers up to float rounding (``dW`` sums chunks, not samples).
"""

from __future__ import annotations

from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.functional import windows
from xpnn.kernels import conv as conv_kernels

Array = Any


class Conv2d(Function):
    """``(N, C_in, H, W) -> (N, C_out, H_out, W_out)`` with weight (C_out, C_in/groups, kh, kw)."""

    name = "conv2d"
    fresh_grads = True  # new arrays (or views of them): a ReLU before it may write into its dL/dx

    @staticmethod
    def forward(
        ctx: Node,
        x: Array,
        w: Array,
        b: Array | None = None,
        *,
        geometry: windows.Geometry,
        groups: int = 1,
        fused: bool = True,
    ) -> Array:
        fast = fused and conv_kernels.applies(x, groups)
        if fast:  # the fast path keeps x, and the columns where small (else recomputed in chunks)
            y, cols = conv_kernels.conv_forward(x, w, b, geometry)
            kept = (x, cols)
        else:
            y, kept = _forward_plain(x, w, geometry, groups)
            if b is not None:
                y = y + namespace(x).reshape(b, (1, -1, 1, 1))
        ctx.saved = (kept, w, tuple(x.shape), geometry, groups, fast)
        return y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        kept, w, x_shape, geo, groups, fast = ctx.saved
        needs = ctx.needs
        grads = conv_kernels.conv_backward(g, w, kept[0], geo, needs[0], kept[1]) if fast else None
        if grads is None:
            cols = _forward_plain(kept[0], w, geo, groups)[1] if fast else kept  # e.g. g of another dtype
            grads = _backward_plain(g, w, cols, geo, x_shape, groups, needs[0])
        dw, db, dx = grads
        return (dx, dw if needs[1] else None, db if len(needs) > 2 and needs[2] else None)


def _grouped(w: Array, groups: int) -> Array:
    """(groups, C_out/groups, C_in/groups * kh * kw): the weight as the GEMM sees it."""
    return namespace(w).reshape(w, (groups, w.shape[0] // groups, -1))


def _forward_plain(x: Array, w: Array, geo: windows.Geometry, groups: int) -> tuple[Array, Array]:
    xp = namespace(x)
    n, (ho, wo) = x.shape[0], geo.out
    cols = xp.reshape(windows.im2col(windows.pad(x, geo.pads), geo), (n, groups, -1, ho * wo))
    y = xp.matmul(_grouped(w, groups), cols)  # (N, groups, C_out/groups, H_out*W_out)
    return xp.reshape(y, (n, w.shape[0], ho, wo)), cols


def _backward_plain(g: Array, w: Array, cols: Array, geo: windows.Geometry, x_shape: tuple[int, ...],
                    groups: int, input_grad: bool) -> tuple[Array, Array, Array | None]:  # fmt: skip
    xp = namespace(g)
    n, c_out = g.shape[0], w.shape[0]
    dy = xp.reshape(g, (n, groups, c_out // groups, -1))
    db = xp.sum(g, axis=(0, 2, 3))
    dw = xp.reshape(xp.sum(xp.matmul(dy, xp.matrix_transpose(cols)), axis=0), tuple(w.shape))
    if not input_grad:
        return dw, db, None
    dcols = xp.matmul(xp.matrix_transpose(_grouped(w, groups)), dy)  # (N, g, Cg*kh*kw, P)
    ho, wo = geo.out
    dcols = xp.reshape(dcols, (n, x_shape[1], len(geo.offsets), ho, wo))
    return dw, db, windows.col2im(dcols, geo, x_shape)

"""Optional NumPy fast paths of Conv2D and MaxPool2D, beside the plain equations of
:mod:`xpnn.nn.conv` and :mod:`xpnn.nn.pooling` (used only while the layer's ``fused`` is on;
tests compare both through that switch).

Convolution, channel-major inside: the plain path multiplies per sample, ``W (O, CK) @
cols[n] (CK, H_out*W_out)``, and sums ``N`` products for ``dW``. Here the image is moved
once to (C, N, H, W), so im2col gives ``cols (C*kh*kw, N*H_out*W_out)`` and each of the
forward, ``dW`` and ``dcols`` products is ONE large GEMM (the shapes BLAS runs fastest).
The output stays channel-major in memory and is returned as its (N, C, H, W) transposed
view: NumPy's element-wise layers keep that memory order, so the next convolution's move to
(C, N, H, W) is a plain contiguous read.

Max pooling keeps a running maximum and its offset in place (one pass per kernel offset; a
NaN wins, as torch's) and routes the gradient to that offset.

Where numba is installed (and :data:`xpnn.kernels.compile.enabled`), the loops of
:mod:`xpnn.kernels.conv_numba` replace those passes with one: max pooling's window maximum
and first maximal offset, its gradient from that offset, im2col without the padded copy and
col2im (same bits; in the CNN benchmark ~11 ms -> ~1 ms per pooling backward).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.kernels import conv_numba

Array = Any  # a NumPy array here; geometry objects come from xpnn.functional.windows (duck-typed)


def applies(x: Array, groups: int = 1) -> bool:
    """Whether the fast path takes ``x``: a NumPy array (and one group, for convolution)."""
    return type(x) is np.ndarray and groups == 1


def _channel_major_padded(x: Array, pads: tuple[int, int, int, int]) -> Array:
    """``x`` (N, C, H, W) as a zero-padded (C, N, H + pads, W + pads) array."""
    n, c, h, w = x.shape
    top, bottom, left, right = pads
    out = np.zeros((c, n, h + top + bottom, w + left + right), dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x.transpose(1, 0, 2, 3)
    return out


def conv_forward(x: Array, w: Array, b: Array | None, geo: Any) -> tuple[Array, Array]:
    """The convolution ``y`` (N, O, H_out, W_out), as a view of channel-major memory, and
    ``cols`` (C*kh*kw, N*H_out*W_out) for the backward."""
    cols = conv_numba.im2col(x, geo)
    if cols is None:
        cols = _im2col(x, geo)
    (ho, wo), n = geo.out, x.shape[0]
    y = np.matmul(w.reshape(w.shape[0], -1), cols)
    if b is not None:
        y += b[:, None]
    return y.reshape(w.shape[0], n, ho, wo).transpose(1, 0, 2, 3), cols


def _im2col(x: Array, geo: Any) -> Array:
    """(C*kh*kw, N*H_out*W_out) from the padded channel-major copy, one pass per kernel offset."""
    padded = _channel_major_padded(x, geo.pads)
    c, n = padded.shape[:2]
    (ho, wo), k = geo.out, len(geo.offsets)
    cols = np.empty((c, k, n, ho, wo), dtype=x.dtype)
    for index, (i, j) in enumerate(geo.offsets):
        cols[:, index] = padded[geo.window(i, j)]
    return cols.reshape(c * k, n * ho * wo)


def conv_backward(dout: Array, w: Array, cols: Array, geo: Any, x_shape: tuple[int, ...],
                  input_grad: bool) -> tuple[Array, Array, Array | None]:  # fmt: skip
    """``dW``, ``db`` and (when ``input_grad``) ``dx`` as :meth:`Conv2D._backward_plain`."""
    o = w.shape[0]
    dy = dout.transpose(1, 0, 2, 3).reshape(o, -1)  # free when dout is channel-major already
    db = dy.sum(axis=1)
    dw = np.matmul(dy, cols.T).reshape(w.shape)
    if not input_grad:
        return dw, db, None
    n, c, h, width = x_shape
    (ho, wo), k = geo.out, len(geo.offsets)
    dcols = np.matmul(w.reshape(o, -1).T, dy).reshape(c, k, n, ho, wo)
    dx = conv_numba.col2im(dcols, geo, x_shape)
    if dx is not None:
        return dw, db, dx
    top, bottom, left, right = geo.pads
    dx = np.zeros((c, n, h + top + bottom, width + left + right), dtype=dout.dtype)
    for index, (i, j) in enumerate(geo.offsets):
        dx[geo.window(i, j)] += dcols[:, index]
    return dw, db, dx[:, :, top : top + h, left : left + width].transpose(1, 0, 2, 3)


def max_pool_forward(x: Array, geo: Any) -> tuple[Array, tuple[Array, ...]]:
    """The window maximum (in ``x``'s memory order: a convolution's channel-major output;
    mixing orders in later element-wise passes made them strided and ~3x slower) and what
    :func:`max_pool_backward` needs: numba's one pass with the first maximal offsets where
    it applies, else a running ``maximum`` in place (one pass per kernel offset)."""
    pooled = conv_numba.max_pool(x, geo)
    if pooled is not None:
        return pooled[0], (x, pooled[1])
    return _max_pool(x, geo)


def _max_pool(x: Array, geo: Any) -> tuple[Array, tuple[Array, ...]]:
    """In place, one pass per kernel offset, the plain path's rule: a strictly greater value or
    a NaN takes the window (the first maximum; the last NaN, as torch), -inf padding never."""
    n, c, h, w = x.shape
    top, bottom, left, right = geo.pads
    padded, real = x, None
    if any(geo.pads):  # full_like keeps x's memory order
        padded = np.full_like(x, -np.inf, shape=(n, c, h + top + bottom, w + left + right))
        padded[:, :, top : top + h, left : left + w] = x
        inside = np.zeros((1, 1, h + top + bottom, w + left + right), dtype=bool)
        inside[:, :, top : top + h, left : left + w] = True
        real = [inside[geo.window(i, j)] for i, j in geo.offsets]
    slices = [padded[geo.window(i, j)] for i, j in geo.offsets]
    best = slices[0].copy(order="K")
    index = np.zeros(best.shape, dtype=np.int16 if len(slices) <= 2**15 else np.int32)
    found = None if real is None else np.broadcast_to(real[0], best.shape).copy()
    take = np.empty(best.shape, dtype=bool)
    for k, candidate in enumerate(slices[1:], start=1):
        np.greater(candidate, best, out=take)
        take |= np.isnan(candidate)
        if real is not None and found is not None:
            take |= ~found
            take &= real[k]
            found |= real[k]
        np.copyto(best, candidate, where=take)
        np.copyto(index, k, where=take)
    return best, (padded, index, x.shape)


def max_pool_backward(dout: Array, saved: tuple[Array, ...], geo: Any) -> Array:
    """Each output's gradient into its window's offset in the saved index (the first maximum,
    the last NaN: torch's rule, as the plain path's); dL/dx (N, C, H, W) in the input's memory
    order, ``0.0`` plus each window's gradient in offset order (the plain path's sum)."""
    if len(saved) == 2:  # numba's forward: (x, the offsets)
        dx = conv_numba.max_pool_grad(dout, saved[1], saved[0], geo)
        if dx is not None:
            return dx
        saved = _max_pool(saved[0], geo)[1]  # e.g. dout of another dtype: the NumPy passes
    padded, index, (_, _, h, w) = saved
    top, left = geo.pads[0], geo.pads[2]
    dx = np.zeros_like(padded, dtype=dout.dtype)
    hit = np.empty(index.shape, dtype=bool)
    disjoint = geo.stride[0] >= geo.kernel[0] and geo.stride[1] >= geo.kernel[1]
    for k, (i, j) in enumerate(geo.offsets):
        np.equal(index, k, out=hit)
        if disjoint:  # each input element lies in one window: assign, no add
            np.copyto(dx[geo.window(i, j)], dout, where=hit)
        else:  # not dout * hit: inf * 0 is NaN
            dx[geo.window(i, j)] += np.where(hit, dout, dout.dtype.type(0))
    return dx[:, :, top : top + h, left : left + w]

"""Optional NumPy fast paths of Conv2D and MaxPool2D, beside the plain equations of
:mod:`xpnn.nn.conv` and :mod:`xpnn.nn.pooling` (used only while the layer's ``fused`` is on;
tests compare both through that switch).

Convolution, channel-major and in chunks of the batch: the plain path multiplies per sample,
``W (O, CK) @ cols[n] (CK, H_out*W_out)``, and sums ``N`` products for ``dW``. Here the image is
read as its (C, N, H, W) view, and the batch runs in chunks of ``nc`` samples whose im2col
``cols (C*kh*kw, nc*H_out*W_out)`` (about :data:`CHUNK_BYTES`) stays in the cache between the
loop that writes it and the GEMMs that read it; the chunk's forward product is written straight
into its columns of the channel-major output, ``dW`` adds the chunks' products, and ``dx`` is
col2im'd chunk by chunk from ``W.T @ dy``. Where the whole batch's im2col is large (above
:data:`KEEP_BYTES`: the ResNet example's 16-channel 28x28 layers, 58 MB each, written and read
back from memory twice a step) nothing of its size is made: the backward recomputes each
chunk's columns from the saved input. Where it is small the forward writes it whole, runs one
GEMM and keeps it for the backward: recomputing it cost the ResNet's 14x14 and 7x7 layers
10-20% of their step (one more im2col pass than the GEMMs hide).
The output stays channel-major in memory and is returned as its (N, C, H, W) transposed view:
NumPy's element-wise layers keep that memory order, so the next convolution reads its
(C, N, H, W) view contiguously. ``dW`` sums its chunks' products in chunk order, so it equals
the plain path's per-sample sum to float rounding (tested at ``rtol=2e-5``), and the same for
any thread count (the chunks do not depend on it).

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

from xpnn import kernels
from xpnn.kernels import conv_numba, workspace

Array = Any  # a NumPy array here; geometry objects come from xpnn.functional.windows (duck-typed)
CHUNK_BYTES = 1 << 21  # one chunk's im2col columns: 2 MiB, in L2/L3 beside the GEMM's blocks
KEEP_BYTES = 1 << 25  # a whole batch's columns up to 32 MiB: written once, kept for the backward


def applies(x: Array, groups: int = 1) -> bool:
    """Whether the fast path takes ``x``: a NumPy array (and one group, for convolution), with
    the fast paths on (:func:`xpnn.kernels.enabled`)."""
    return type(x) is np.ndarray and groups == 1 and kernels.enabled()


def _chunk(x_shape: tuple[int, ...], geo: Any, itemsize: int) -> int:
    """Samples per chunk: as many as keep one chunk's columns within :data:`CHUNK_BYTES`."""
    per_sample = x_shape[1] * len(geo.offsets) * geo.out[0] * geo.out[1] * itemsize
    return max(1, CHUNK_BYTES // max(per_sample, 1))


def _fill_columns(moved: Array, geo: Any, n0: int, cols: Array) -> None:
    """``cols`` (C, kh*kw, nc, H_out, W_out): the windows of samples ``n0 ..`` of ``moved``
    (C, N, H, W): numba's loop, else one strided copy per kernel offset from a padded chunk."""
    if conv_numba.im2col(moved, geo, n0, cols):
        return
    c, nc, (h, w) = moved.shape[0], cols.shape[2], moved.shape[2:]
    top, bottom, left, right = geo.pads
    padded = np.zeros((c, nc, h + top + bottom, w + left + right), dtype=moved.dtype)
    padded[:, :, top : top + h, left : left + w] = moved[:, n0 : n0 + nc]
    for index, (i, j) in enumerate(geo.offsets):
        cols[:, index] = padded[geo.window(i, j)]


def _add_columns(dcols: Array, geo: Any, n0: int, dx: Array) -> None:
    """Samples ``n0 ..`` of ``dx`` (C, N, H, W): ``0.0`` plus each offset's piece of ``dcols``
    (C, kh*kw, nc, H_out, W_out) in offset order, the padding dropped."""
    if conv_numba.col2im(dcols, geo, n0, dx):
        return
    c, nc, (h, w) = dx.shape[0], dcols.shape[2], dx.shape[2:]
    top, bottom, left, right = geo.pads
    padded = np.zeros((c, nc, h + top + bottom, w + left + right), dtype=dx.dtype)
    for index, (i, j) in enumerate(geo.offsets):
        padded[geo.window(i, j)] += dcols[:, index]
    dx[:, n0 : n0 + nc] = padded[:, :, top : top + h, left : left + w]


def _pieces(n: int, nc: int) -> list[tuple[int, int]]:
    return [(n0, min(nc, n - n0)) for n0 in range(0, n, nc)]


def conv_forward(x: Array, w: Array, b: Array | None, geo: Any) -> tuple[Array, Array | None]:
    """The convolution ``y`` (N, O, H_out, W_out), a view of channel-major memory, and the whole
    batch's columns where they are within :data:`KEEP_BYTES` (else None: the backward keeps
    ``x`` and recomputes each chunk's columns)."""
    n, c = x.shape[:2]
    o, (ho, wo), k = w.shape[0], geo.out, len(geo.offsets)
    moved, kernel, p = x.transpose(1, 0, 2, 3), w.reshape(o, -1), ho * wo
    y = np.empty((o, n * p), dtype=np.result_type(x, w))
    keep = _kept(x.shape, geo, x.dtype.itemsize)
    cols: Array = np.empty((c, k, n, ho, wo), x.dtype) if keep else None
    for n0, nc in _pieces(n, max(n, 1) if keep else _chunk(x.shape, geo, x.dtype.itemsize)):
        cols = cols if keep else workspace.scratch((c, k, nc, ho, wo), x.dtype)  # keep: one piece
        _fill_columns(moved, geo, n0, cols)
        out = y[:, n0 * p : (n0 + nc) * p]
        np.matmul(kernel, cols.reshape(c * k, nc * p), out=out)
        if b is not None:
            out += b[:, None]  # while the chunk's output is in the cache
        if not keep:
            cols = None  # the scratch buffer is free again
        del out
    return y.reshape(o, n, ho, wo).transpose(1, 0, 2, 3), cols


def _kept(x_shape: tuple[int, ...], geo: Any, itemsize: int) -> bool:
    """Whether the whole batch's columns are within :data:`KEEP_BYTES` (kept for the backward)."""
    return x_shape[0] * x_shape[1] * len(geo.offsets) * geo.out[0] * geo.out[1] * itemsize <= KEEP_BYTES


def conv_backward(dout: Array, w: Array, x: Array, geo: Any, input_grad: bool, kept: Array | None = None
                  ) -> tuple[Array, Array, Array | None] | None:  # fmt: skip
    """``dW``, ``db`` and (when ``input_grad``) ``dx`` as :meth:`Conv2D._backward_plain`, from
    the input ``x`` and the columns ``kept`` by the forward (None: recomputed chunk by chunk);
    None where ``dout`` is not a NumPy array of ``x``'s dtype."""
    if type(dout) is not np.ndarray or dout.dtype != x.dtype or w.dtype != x.dtype:
        return None
    n, c = x.shape[:2]
    o, (ho, wo), k = w.shape[0], geo.out, len(geo.offsets)
    moved, kernel, p = x.transpose(1, 0, 2, 3), w.reshape(o, -1), ho * wo
    dy = dout.transpose(1, 0, 2, 3).reshape(o, -1)  # free when dout is channel-major already
    db = dy.sum(axis=1)
    dw_t = np.zeros((c * k, o), dtype=x.dtype)  # dW.T: cols @ dy.T runs ~1.7x faster than dy @ cols.T
    dx = np.empty((c, *x.shape[:1], *x.shape[2:]), dtype=x.dtype) if input_grad else None
    for n0, nc in _pieces(n, max(n, 1) if kept is not None else _chunk(x.shape, geo, x.dtype.itemsize)):
        if kept is not None:
            cols = kept
        else:
            cols = workspace.scratch((c, k, nc, ho, wo), x.dtype)
            _fill_columns(moved, geo, n0, cols)
        piece = dy[:, n0 * p : (n0 + nc) * p]
        dw_t += np.matmul(cols.reshape(c * k, -1), piece.T, out=workspace.scratch((c * k, o), x.dtype))
        del cols
        if dx is not None:
            dcols = workspace.scratch((c * k, nc * p), x.dtype)
            np.matmul(kernel.T, piece, out=dcols)
            _add_columns(dcols.reshape(c, k, nc, ho, wo), geo, n0, dx)
            del dcols
    return dw_t.T.reshape(w.shape), db, None if dx is None else dx.transpose(1, 0, 2, 3)


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

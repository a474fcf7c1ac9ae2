"""The compiled loops of :mod:`xpnn.kernels.conv_numba` (imports numba: imported only from there,
at the first call where numba is available).

Each loop's body is inlined into its dispatcher with the common window sizes as constants
(2x2 and 3x3 kernels, strides 1 and 2): LLVM then unrolls the window and vectorises along the
output row (a 2x2 pool over the CNN benchmark's (128, 32, 28, 28) input: 6 ms with the sizes
as run-time values, 0.9 ms as constants). Other sizes run the same body with run-time sizes.
No views are made inside the loops (each one costs a reference count): plain 4-D indexing.
The bodies live in this file with their dispatchers, so numba's cache (keyed on this file)
never keeps a dispatcher compiled against an old body.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from xpnn.kernels.compile import OPTIONS
from xpnn.kernels.compile import jit as _jit

Array = Any
_inline = numba.njit(inline="always", **OPTIONS)
_u = np.uint64  # an index cast to unsigned: numba skips the negative-index wraparound (which
# blocks vectorisation: the 2x2 pool's 2.1 ms -> 0.9 ms); every index here is in range


@_inline
def _clipped(x: Array, out: Array, index: Array, a: int, b: int, oh: int, ow: int, y0: int, x0: int,
             kh: int, kw: int) -> None:  # fmt: skip
    """A window reaching into the padding: only its real cells are read, from -inf and the
    first real cell (padding never wins: a window of -inf routes to its first real cell)."""
    best, at = x.dtype.type(-np.inf), max(0, -y0) * kw + max(0, -x0)
    for i in range(max(0, -y0), min(kh, x.shape[2] - y0)):
        for j in range(max(0, -x0), min(kw, x.shape[3] - x0)):
            v = x[a, b, _u(y0 + i), _u(x0 + j)]
            take = (v > best) | (v != v)
            at = i * kw + j if take else at
            best = v if take else best
    out[a, b, oh, ow] = best
    index[a, b, oh, ow] = at


@_inline
def _pool_body(x: Array, out: Array, index: Array, kh: int, kw: int, sh: int, sw: int, top: int,
               left: int) -> None:  # fmt: skip
    # branch-free updates (ties and NaNs are data-dependent), torch's rule: a strictly greater
    # value or a NaN takes the window (the FIRST maximum, a tie keeps its value and sign of
    # zero; the LAST NaN, whose cell then gets the gradient)
    h, ho, wo = x.shape[2], out.shape[2], out.shape[3]
    lo = min(wo, (left + sw - 1) // sw)  # the first column whose window starts inside
    hi = max(lo, min(wo, (x.shape[3] + left - kw) // sw + 1))  # past the last ending inside
    for a in range(x.shape[0]):
        for b in range(x.shape[1]):
            for oh in range(ho):
                y0 = oh * sh - top
                start, stop = (lo, hi) if y0 >= 0 and y0 + kh <= h else (wo, wo)
                for ow in range(start):
                    _clipped(x, out, index, a, b, oh, ow, y0, ow * sw - left, kh, kw)
                for ow in range(start, stop):
                    x0 = ow * sw - left
                    best, at = x[a, b, _u(y0), _u(x0)], 0
                    for i in range(kh):
                        for j in range(kw):
                            v = x[a, b, _u(y0 + i), _u(x0 + j)]
                            take = (v > best) | (v != v)
                            at = i * kw + j if take else at
                            best = v if take else best
                    out[a, b, oh, _u(ow)] = best
                    index[a, b, oh, _u(ow)] = at
                for ow in range(stop, wo):
                    _clipped(x, out, index, a, b, oh, ow, y0, ow * sw - left, kh, kw)


@_jit
def pool(x: Array, kh: int, kw: int, sh: int, sw: int, top: int, left: int, out: Array,
         index: Array) -> None:  # fmt: skip
    """Window maxima and their offsets (the first maximum, the last NaN) of ``x`` (A, B, H, W)
    into ``out`` and ``index`` (A, B, H_out, W_out)."""
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        _pool_body(x, out, index, 2, 2, 2, 2, top, left)
    elif kh == 3 and kw == 3 and sh == 2 and sw == 2:
        _pool_body(x, out, index, 3, 3, 2, 2, top, left)
    elif kh == 3 and kw == 3 and sh == 1 and sw == 1:
        _pool_body(x, out, index, 3, 3, 1, 1, top, left)
    else:
        _pool_body(x, out, index, kh, kw, sh, sw, top, left)


@_inline
def _pool_grad_body(dout: Array, index: Array, dx: Array, kw: int, sh: int, sw: int, top: int,
                    left: int, disjoint: bool) -> None:  # fmt: skip
    zero, ho, wo = dx.dtype.type(0), dout.shape[2], dout.shape[3]
    for a in range(dx.shape[0]):
        for b in range(dx.shape[1]):
            for y in range(dx.shape[2]):
                for x in range(dx.shape[3]):
                    dx[a, b, y, x] = zero
            # overlapping windows in reverse row-major order: each cell then receives its windows
            # in the order of its offset inside them (row-major), as the plain col2im adds them
            # (disjoint ones run forward: a cell has one window, and this order is ~4x faster)
            for q in range(ho):
                oh = q if disjoint else ho - 1 - q
                for r in range(wo):
                    ow = r if disjoint else wo - 1 - r
                    k = index[a, b, _u(oh), _u(ow)]
                    if k >= 0:
                        y, x = _u(oh * sh - top + k // kw), _u(ow * sw - left + k % kw)
                        dx[a, b, y, x] += dout[a, b, _u(oh), _u(ow)]


@_jit
def pool_grad(dout: Array, index: Array, kh: int, kw: int, sh: int, sw: int, top: int, left: int,
              dx: Array) -> None:  # fmt: skip
    """dL/dx (A, B, H, W): 0.0 plus, in each window's first maximal cell, its gradient."""
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        _pool_grad_body(dout, index, dx, 2, 2, 2, top, left, True)
    elif kh == 3 and kw == 3 and sh == 2 and sw == 2:
        _pool_grad_body(dout, index, dx, 3, 2, 2, top, left, False)
    elif kh == 3 and kw == 3 and sh == 1 and sw == 1:
        _pool_grad_body(dout, index, dx, 3, 1, 1, top, left, False)
    else:
        _pool_grad_body(dout, index, dx, kw, sh, sw, top, left, sh >= kh and sw >= kw)


@_inline
def _columns(x0: int, sw: int, width: int, wo: int) -> tuple[int, int]:
    """The output columns ``[first, last)`` whose input column ``x0 + ow*sw`` lies inside."""
    first = min(wo, max(0, -(x0 // sw)))
    return first, max(first, min(wo, (width - 1 - x0) // sw + 1))


@_inline
def _im2col_body(x: Array, cols: Array, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int,
                 left: int) -> None:  # fmt: skip
    h, ho, wo = x.shape[2], cols.shape[3], cols.shape[4]
    zero = cols.dtype.type(0)
    for c in range(x.shape[0]):
        for i in range(kh):
            for j in range(kw):
                k, x0 = i * kw + j, j * dw - left
                first, last = _columns(x0, sw, x.shape[3], wo)
                for n in range(x.shape[1]):
                    for oh in range(ho):
                        y = oh * sh + i * dh - top
                        if y < 0 or y >= h:
                            for ow in range(wo):
                                cols[c, k, n, oh, ow] = zero
                            continue
                        for ow in range(first):
                            cols[c, k, n, oh, ow] = zero
                        for ow in range(first, last):
                            cols[c, k, n, oh, ow] = x[c, n, _u(y), _u(x0 + ow * sw)]
                        for ow in range(last, wo):
                            cols[c, k, n, oh, ow] = zero


@_jit
def im2col(x: Array, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
           cols: Array) -> None:  # fmt: skip
    """``cols`` (C, kh*kw, N, H_out, W_out) from ``x`` (C, N, H, W); zero where padding."""
    if kh == 3 and kw == 3 and sh == 1 and sw == 1 and dh == 1 and dw == 1:
        _im2col_body(x, cols, 3, 3, 1, 1, 1, 1, top, left)
    else:
        _im2col_body(x, cols, kh, kw, sh, sw, dh, dw, top, left)


@_inline
def _col2im_body(dcols: Array, dx: Array, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int,
                 left: int) -> None:  # fmt: skip
    h, ho, wo = dx.shape[2], dcols.shape[3], dcols.shape[4]
    zero = dx.dtype.type(0)
    for c in range(dx.shape[0]):
        for n in range(dx.shape[1]):
            for y in range(h):
                for x in range(dx.shape[3]):
                    dx[c, n, y, x] = zero
            for i in range(kh):
                for j in range(kw):
                    k, x0 = i * kw + j, j * dw - left
                    first, last = _columns(x0, sw, dx.shape[3], wo)
                    for oh in range(ho):
                        y = oh * sh + i * dh - top
                        if 0 <= y < h:
                            for ow in range(first, last):
                                dx[c, n, _u(y), _u(x0 + ow * sw)] += dcols[c, k, n, oh, ow]


@_jit
def col2im(dcols: Array, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
           dx: Array) -> None:  # fmt: skip
    """dL/dx (C, N, H, W) from ``dcols`` (C, kh*kw, N, H_out, W_out): 0.0 plus each offset's
    piece in offset order (NumPy's ``dx[window] += dcols[:, k]`` passes); padding dropped."""
    if kh == 3 and kw == 3 and sh == 1 and sw == 1 and dh == 1 and dw == 1:
        _col2im_body(dcols, dx, 3, 3, 1, 1, 1, 1, top, left)
    else:
        _col2im_body(dcols, dx, kh, kw, sh, sw, dh, dw, top, left)


@_inline
def _kept_columns(kw: int, dw: int, left: int, h: int, w: int) -> Array:
    """(kw, H*W) booleans: whether output pixel p's input column for kernel column j is inside."""
    kept = np.empty((kw, h * w), dtype=np.bool_)
    for j in range(kw):
        for p in range(h * w):
            kept[j, p] = 0 <= p % w + j * dw - left < w
    return kept


@_inline
def _im2col_same_body(x: Array, cols: Array, kh: int, kw: int, dh: int, dw: int, top: int, left: int,
                      h: int, w: int) -> None:  # fmt: skip
    # stride 1 and H_out, W_out = H, W: offset (i, j)'s piece of a plane is the plane shifted by
    # s = (i*dh - top)*W + (j*dw - left) flat elements; a pixel whose column wrapped round (or
    # whose source lies off the plane) is padding, 0. Long contiguous runs instead of rows
    plane, zero = h * w, cols.dtype.type(0)
    kept = _kept_columns(kw, dw, left, h, w)
    for c in range(x.shape[0]):
        for i in range(kh):
            for j in range(kw):
                k, shift = i * kw + j, (i * dh - top) * w + j * dw - left
                first, last = min(plane, max(0, -shift)), max(0, min(plane, plane - shift))
                for n in range(x.shape[1]):
                    for p in range(first):
                        cols[c, k, n, p] = zero
                    for p in range(first, last):
                        v = x[c, n, _u(p + shift)]
                        cols[c, k, n, _u(p)] = v if kept[j, _u(p)] else zero
                    for p in range(max(first, last), plane):
                        cols[c, k, n, p] = zero


@_jit
def im2col_same(x: Array, kh: int, kw: int, dh: int, dw: int, top: int, left: int, h: int, w: int,
                cols: Array) -> None:  # fmt: skip
    """:func:`im2col` for stride 1 and an output of the input's size, over flat planes: ``x``
    (C, N, H*W), ``cols`` (C, kh*kw, N, H*W), both C-contiguous."""
    if kh == 3 and kw == 3 and dh == 1 and dw == 1:
        _im2col_same_body(x, cols, 3, 3, 1, 1, top, left, h, w)
    else:
        _im2col_same_body(x, cols, kh, kw, dh, dw, top, left, h, w)


@_inline
def _col2im_same_body(dcols: Array, dx: Array, kh: int, kw: int, dh: int, dw: int, top: int, left: int,
                      h: int, w: int) -> None:  # fmt: skip
    # the adjoint of _im2col_same_body: a wrapped pixel adds 0.0, which leaves every sum's bits
    # as they are (the sums start at +0.0, so they never hold -0.0) and drops an inf or NaN
    plane, zero = h * w, dx.dtype.type(0)
    kept = _kept_columns(kw, dw, left, h, w)
    for c in range(dx.shape[0]):
        for n in range(dx.shape[1]):
            for p in range(plane):
                dx[c, n, p] = zero
            for i in range(kh):
                for j in range(kw):
                    k, shift = i * kw + j, (i * dh - top) * w + j * dw - left
                    first, last = min(plane, max(0, -shift)), max(0, min(plane, plane - shift))
                    for p in range(first, last):
                        v = dcols[c, k, n, _u(p)]
                        dx[c, n, _u(p + shift)] += v if kept[j, _u(p)] else zero


@_jit
def col2im_same(dcols: Array, kh: int, kw: int, dh: int, dw: int, top: int, left: int, h: int, w: int,
                dx: Array) -> None:  # fmt: skip
    """:func:`col2im` for stride 1 and an output of the input's size, over flat planes:
    ``dcols`` (C, kh*kw, N, H*W), ``dx`` (C, N, H*W), both C-contiguous."""
    if kh == 3 and kw == 3 and dh == 1 and dw == 1:
        _col2im_same_body(dcols, dx, 3, 3, 1, 1, top, left, h, w)
    else:
        _col2im_same_body(dcols, dx, kh, kw, dh, dw, top, left, h, w)

"""The compiled im2col / col2im loops of a convolution (imports numba: imported only from
:mod:`xpnn.kernels.conv_numba`, at the first call where numba is available).

Each works on one chunk of the batch, the samples ``[n0, n0 + nc)``: ``cols`` holds that
chunk's windows (C, kh*kw, nc, H_out, W_out) and stays in the cache between its im2col and the
GEMM that reads it (:mod:`xpnn.kernels.conv`). The common 3x3 stride-1 window is inlined with
its sizes as constants (LLVM unrolls the window). The work is split over the chunk's (channel,
sample) planes into ``parts`` (:mod:`xpnn.kernels.threads`): each plane whole, in the serial
order, on one thread, so the bits do not depend on the thread count. col2im adds each offset's
piece into ``0.0`` in offset order (NumPy's ``dx[window] += dcols[:, k]`` passes). The bodies
live in this file with their dispatchers, so numba's cache (keyed on this file) never keeps a
dispatcher compiled against an old body.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from xpnn.kernels.compile import OPTIONS, threaded

Array = Any
_inline = numba.njit(inline="always", **OPTIONS)
_u = np.uint64  # an index cast to unsigned: numba skips the negative-index wraparound (which
# blocks vectorisation); every index here is in range


@_inline
def _columns(x0: int, sw: int, width: int, wo: int) -> tuple[int, int]:
    """The output columns ``[first, last)`` whose input column ``x0 + ow*sw`` lies inside."""
    first = min(wo, max(0, -(x0 // sw)))
    return first, max(first, min(wo, (width - 1 - x0) // sw + 1))


@_inline
def _im2col_body(x: Array, n0: int, cols: Array, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
                 top: int, left: int, lo: int, hi: int) -> None:  # fmt: skip
    h, ho, wo, nc = x.shape[2], cols.shape[3], cols.shape[4], cols.shape[2]
    zero = cols.dtype.type(0)
    for plane in range(lo, hi):
        c, n = plane // nc, plane % nc
        for i in range(kh):
            for j in range(kw):
                k, x0 = i * kw + j, j * dw - left
                first, last = _columns(x0, sw, x.shape[3], wo)
                for oh in range(ho):
                    y = oh * sh + i * dh - top
                    if y < 0 or y >= h:
                        for ow in range(wo):
                            cols[c, k, n, oh, ow] = zero
                        continue
                    for ow in range(first):
                        cols[c, k, n, oh, ow] = zero
                    for ow in range(first, last):
                        cols[c, k, n, oh, ow] = x[c, _u(n0 + n), _u(y), _u(x0 + ow * sw)]
                    for ow in range(last, wo):
                        cols[c, k, n, oh, ow] = zero


def _im2col(x: Array, n0: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
            cols: Array, begin: int, end: int, parts: int) -> None:  # fmt: skip
    """``cols`` (C, kh*kw, nc, H_out, W_out) from samples ``n0..`` of ``x`` (C, N, H, W); zero
    where padding."""
    planes = cols.shape[0] * cols.shape[2]
    for part in range(begin, end):
        lo, hi = part * planes // parts, (part + 1) * planes // parts
        if kh == 3 and kw == 3 and sh == 1 and sw == 1 and dh == 1 and dw == 1:
            _im2col_body(x, n0, cols, 3, 3, 1, 1, 1, 1, top, left, lo, hi)
        else:
            _im2col_body(x, n0, cols, kh, kw, sh, sw, dh, dw, top, left, lo, hi)


@_inline
def _col2im_body(dcols: Array, n0: int, dx: Array, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
                 top: int, left: int, lo: int, hi: int) -> None:  # fmt: skip
    h, ho, wo, nc = dx.shape[2], dcols.shape[3], dcols.shape[4], dcols.shape[2]
    zero = dx.dtype.type(0)
    for plane in range(lo, hi):
        c, n = plane // nc, plane % nc
        m = _u(n0 + n)
        for y in range(h):
            for x in range(dx.shape[3]):
                dx[c, m, y, x] = zero
        for i in range(kh):
            for j in range(kw):
                k, x0 = i * kw + j, j * dw - left
                first, last = _columns(x0, sw, dx.shape[3], wo)
                for oh in range(ho):
                    y = oh * sh + i * dh - top
                    if 0 <= y < h:
                        for ow in range(first, last):
                            dx[c, m, _u(y), _u(x0 + ow * sw)] += dcols[c, k, n, oh, ow]


def _col2im(dcols: Array, n0: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, top: int, left: int,
            dx: Array, begin: int, end: int, parts: int) -> None:  # fmt: skip
    """Samples ``n0..`` of dL/dx (C, N, H, W) from ``dcols`` (C, kh*kw, nc, H_out, W_out); padding
    dropped."""
    planes = dcols.shape[0] * dcols.shape[2]
    for part in range(begin, end):
        lo, hi = part * planes // parts, (part + 1) * planes // parts
        if kh == 3 and kw == 3 and sh == 1 and sw == 1 and dh == 1 and dw == 1:
            _col2im_body(dcols, n0, dx, 3, 3, 1, 1, 1, 1, top, left, lo, hi)
        else:
            _col2im_body(dcols, n0, dx, kh, kw, sh, sw, dh, dw, top, left, lo, hi)


@_inline
def _kept_columns(kw: int, dw: int, left: int, h: int, w: int) -> Array:
    """(kw, H*W) booleans: whether output pixel p's input column for kernel column j is inside."""
    kept = np.empty((kw, h * w), dtype=np.bool_)
    for j in range(kw):
        for p in range(h * w):
            kept[j, p] = 0 <= p % w + j * dw - left < w
    return kept


@_inline
def _im2col_same_body(x: Array, n0: int, cols: Array, kh: int, kw: int, dh: int, dw: int, top: int,
                      left: int, h: int, w: int, lo: int, hi: int) -> None:  # fmt: skip
    # stride 1 and H_out, W_out = H, W: offset (i, j)'s piece of a plane is the plane shifted by
    # s = (i*dh - top)*W + (j*dw - left) flat elements; a pixel whose column wrapped round (or
    # whose source lies off the plane) is padding, 0. Long contiguous runs instead of rows
    plane_size, zero, nc = h * w, cols.dtype.type(0), cols.shape[2]
    kept = _kept_columns(kw, dw, left, h, w)
    for plane in range(lo, hi):
        c, n = plane // nc, plane % nc
        m = _u(n0 + n)
        for i in range(kh):
            for j in range(kw):
                k, shift = i * kw + j, (i * dh - top) * w + j * dw - left
                first = min(plane_size, max(0, -shift))
                last = max(0, min(plane_size, plane_size - shift))
                for p in range(first):
                    cols[c, k, n, p] = zero
                for p in range(first, last):
                    v = x[c, m, _u(p + shift)]
                    cols[c, k, n, _u(p)] = v if kept[j, _u(p)] else zero
                for p in range(max(first, last), plane_size):
                    cols[c, k, n, p] = zero


def _im2col_same(x: Array, n0: int, kh: int, kw: int, dh: int, dw: int, top: int, left: int, h: int, w: int,
                 cols: Array, begin: int, end: int, parts: int) -> None:  # fmt: skip
    """:func:`_im2col` for stride 1 and an output of the input's size, over flat planes: ``x``
    (C, N, H*W) C-contiguous, ``cols`` (C, kh*kw, nc, H*W)."""
    planes = cols.shape[0] * cols.shape[2]
    for part in range(begin, end):
        lo, hi = part * planes // parts, (part + 1) * planes // parts
        if kh == 3 and kw == 3 and dh == 1 and dw == 1:
            _im2col_same_body(x, n0, cols, 3, 3, 1, 1, top, left, h, w, lo, hi)
        else:
            _im2col_same_body(x, n0, cols, kh, kw, dh, dw, top, left, h, w, lo, hi)


@_inline
def _col2im_same_body(dcols: Array, n0: int, dx: Array, kh: int, kw: int, dh: int, dw: int, top: int,
                      left: int, h: int, w: int, lo: int, hi: int) -> None:  # fmt: skip
    # the adjoint of _im2col_same_body: a wrapped pixel adds 0.0, which leaves every sum's bits
    # as they are (the sums start at +0.0, so they never hold -0.0) and drops an inf or NaN
    plane_size, zero, nc = h * w, dx.dtype.type(0), dcols.shape[2]
    kept = _kept_columns(kw, dw, left, h, w)
    for plane in range(lo, hi):
        c, n = plane // nc, plane % nc
        m = _u(n0 + n)
        for p in range(plane_size):
            dx[c, m, p] = zero
        for i in range(kh):
            for j in range(kw):
                k, shift = i * kw + j, (i * dh - top) * w + j * dw - left
                first = min(plane_size, max(0, -shift))
                last = max(0, min(plane_size, plane_size - shift))
                for p in range(first, last):
                    v = dcols[c, k, n, _u(p)]
                    dx[c, m, _u(p + shift)] += v if kept[j, _u(p)] else zero


def _col2im_same(dcols: Array, n0: int, kh: int, kw: int, dh: int, dw: int, top: int, left: int, h: int,
                 w: int, dx: Array, begin: int, end: int, parts: int) -> None:  # fmt: skip
    """:func:`_col2im` for stride 1 and an output of the input's size, over flat planes:
    ``dcols`` (C, kh*kw, nc, H*W), ``dx`` (C, N, H*W), C-contiguous."""
    planes = dcols.shape[0] * dcols.shape[2]
    for part in range(begin, end):
        lo, hi = part * planes // parts, (part + 1) * planes // parts
        if kh == 3 and kw == 3 and dh == 1 and dw == 1:
            _col2im_same_body(dcols, n0, dx, 3, 3, 1, 1, top, left, h, w, lo, hi)
        else:
            _col2im_same_body(dcols, n0, dx, kh, kw, dh, dw, top, left, h, w, lo, hi)


im2col = threaded(_im2col)
col2im = threaded(_col2im)
im2col_same = threaded(_im2col_same)
col2im_same = threaded(_col2im_same)

"""The compiled loops of max pooling (imports numba: imported only from
:mod:`xpnn.kernels.conv_numba`, at the first call where numba is available).

Each loop's body is inlined into its dispatcher with the common window sizes as constants
(2x2 and 3x3 kernels, strides 1 and 2): LLVM then unrolls the window and vectorises along the
output row (a 2x2 pool over the CNN benchmark's (128, 32, 28, 28) input: 6 ms with the sizes
as run-time values, 0.9 ms as constants). Other sizes run the same body with run-time sizes.
No views are made inside the loops (each one costs a reference count): plain 4-D indexing.
A body handles the planes ``[lo, hi)`` of its (A, B) leading axes; the dispatcher splits the
planes into ``parts`` (:mod:`xpnn.kernels.threads`): each plane is computed whole, in the same
order, by one thread, so the bits do not depend on the thread count. The bodies live in this
file with their dispatchers, so numba's cache (keyed on this file) never keeps a dispatcher
compiled against an old body.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from xpnn.kernels.compile import OPTIONS, threaded

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
               left: int, lo: int, hi: int) -> None:  # fmt: skip
    # branch-free updates (ties and NaNs are data-dependent), torch's rule: a strictly greater
    # value or a NaN takes the window (the FIRST maximum, a tie keeps its value and sign of
    # zero; the LAST NaN, whose cell then gets the gradient)
    h, ho, wo = x.shape[2], out.shape[2], out.shape[3]
    inner = min(wo, (left + sw - 1) // sw)  # the first column whose window starts inside
    outer = max(inner, min(wo, (x.shape[3] + left - kw) // sw + 1))  # past the last ending inside
    for plane in range(lo, hi):
        a, b = plane // x.shape[1], plane % x.shape[1]
        for oh in range(ho):
            y0 = oh * sh - top
            start, stop = (inner, outer) if y0 >= 0 and y0 + kh <= h else (wo, wo)
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


def _pool(x: Array, kh: int, kw: int, sh: int, sw: int, top: int, left: int, out: Array,
          index: Array, begin: int, end: int, parts: int) -> None:  # fmt: skip
    """Window maxima and their offsets (the first maximum, the last NaN) of ``x`` (A, B, H, W)
    into ``out`` and ``index`` (A, B, H_out, W_out)."""
    planes = x.shape[0] * x.shape[1]
    for part in range(begin, end):
        lo, hi = part * planes // parts, (part + 1) * planes // parts
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _pool_body(x, out, index, 2, 2, 2, 2, top, left, lo, hi)
        elif kh == 3 and kw == 3 and sh == 2 and sw == 2:
            _pool_body(x, out, index, 3, 3, 2, 2, top, left, lo, hi)
        elif kh == 3 and kw == 3 and sh == 1 and sw == 1:
            _pool_body(x, out, index, 3, 3, 1, 1, top, left, lo, hi)
        else:
            _pool_body(x, out, index, kh, kw, sh, sw, top, left, lo, hi)


@_inline
def _pool_grad_body(dout: Array, index: Array, dx: Array, kw: int, sh: int, sw: int, top: int,
                    left: int, disjoint: bool, lo: int, hi: int) -> None:  # fmt: skip
    zero, ho, wo = dx.dtype.type(0), dout.shape[2], dout.shape[3]
    for plane in range(lo, hi):
        a, b = plane // dx.shape[1], plane % dx.shape[1]
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


def _pool_grad(dout: Array, index: Array, kh: int, kw: int, sh: int, sw: int, top: int, left: int,
               dx: Array, begin: int, end: int, parts: int) -> None:  # fmt: skip
    """dL/dx (A, B, H, W): 0.0 plus, in each window's first maximal cell, its gradient."""
    planes = dx.shape[0] * dx.shape[1]
    for part in range(begin, end):
        lo, hi = part * planes // parts, (part + 1) * planes // parts
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            _pool_grad_body(dout, index, dx, 2, 2, 2, top, left, True, lo, hi)
        elif kh == 3 and kw == 3 and sh == 2 and sw == 2:
            _pool_grad_body(dout, index, dx, 3, 2, 2, top, left, False, lo, hi)
        elif kh == 3 and kw == 3 and sh == 1 and sw == 1:
            _pool_grad_body(dout, index, dx, 3, 1, 1, top, left, False, lo, hi)
        else:
            _pool_grad_body(dout, index, dx, kw, sh, sw, top, left, sh >= kh and sw >= kw, lo, hi)


pool = threaded(_pool)
pool_grad = threaded(_pool_grad)

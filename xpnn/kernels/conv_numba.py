"""Optional one-pass numba loops for MaxPool2D and Conv2D's im2col / col2im (the ``fast`` extra),
on as many threads as the user allows (:mod:`xpnn.kernels.threads`).

The NumPy fast paths of :mod:`xpnn.kernels.conv` make one strided pass per kernel offset
(and, for max pooling's backward, four boolean passes per offset: ~11 ms per 2x2 pool in the
CNN benchmark); their inner loops run over one output row of 14-28 elements, so NumPy's
per-row overhead dominates. The loops here read each input once and write each output once.

They compute the same numbers bit for bit, as the tests check:

* max pooling, torch's rule: a strictly greater value or a NaN takes the window, so the
  gradient goes to the FIRST maximal offset in row-major kernel order (a tie keeps the
  earlier value and its sign of zero) or to the LAST NaN; ``-inf`` padding is never read,
  and a window of ``-inf`` goes to its first real cell. The index (int16) replaces the
  window slices a backward would recompute from. dx is ``0.0`` plus each window's
  gradient added in offset order (the plain path's sum, also for overlapping windows).
* im2col copies; col2im adds each offset's piece into ``0.0`` in offset order (NumPy's order).

Arrays reach the loops as 4-D (A, B, H, W) views in MEMORY order (A, B = N, C for a contiguous
NCHW array, C, N for a convolution's channel-major output), so every plane is contiguous and
results keep the input's memory order. im2col and col2im work on one chunk of the batch at a
time (:mod:`xpnn.kernels.conv`). Like :mod:`xpnn.kernels.compile` (whose
:func:`~xpnn.kernels.compile.available` and ``enabled`` switch these off as well), numba is
imported at the first call only and compiled code is cached next to the loops' files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.kernels import compile, threads

Array = Any
_loops: list[Any] = []  # xpnn.kernels.pool_loops and conv_loops, imported at the first call


def _pools() -> Any:
    if not _loops:
        from xpnn.kernels import conv_loops, pool_loops  # import numba: only where available() found it

        _loops.extend([pool_loops, conv_loops])
    return _loops[0]


def _columns() -> Any:
    _pools()
    return _loops[1]


def _takes(x: Array) -> bool:
    """Whether the loops take ``x``: numba is on and ``x`` a float32 or float64 NumPy array."""
    return compile.available() and type(x) is np.ndarray and x.dtype in (np.float32, np.float64)


def memory_order(x: Array) -> Array | None:
    """``x`` (N, C, H, W) as its (A, B, H, W) view whose planes are C-contiguous in memory: ``x``
    itself, or its channel-major (C, N, H, W) transpose; None where numba does not apply."""
    if not _takes(x):
        return None
    if x.flags.c_contiguous:
        return x
    swapped = x.transpose(1, 0, 2, 3)
    return swapped if swapped.flags.c_contiguous else None


def _as_nchw(result: Array, x: Array, moved: Array) -> Array:
    """``result``, laid out as ``moved`` (:func:`memory_order` of ``x``), seen as (N, C, H, W)."""
    return result if moved is x else result.transpose(1, 0, 2, 3)


def max_pool(x: Array, geo: Any) -> tuple[Array, Array] | None:
    """The window maxima (N, C, H_out, W_out) in ``x``'s memory order and the first maximal
    offset of each (int16; the last NaN's where one is there), or None where numba does not apply."""
    moved = memory_order(x)
    if moved is None or geo.dilation != (1, 1) or len(geo.offsets) > 2**15:
        return None
    shape = (*moved.shape[:2], *geo.out)
    out, index = np.empty(shape, dtype=x.dtype), np.empty(shape, dtype=np.int16)
    (kh, kw), (sh, sw), pads = geo.kernel, geo.stride, geo.pads
    _pools().pool(threads.parts_for(x.size), moved, kh, kw, sh, sw, pads[0], pads[2], out, index)
    return _as_nchw(out, x, moved), index


def max_pool_grad(dout: Array, index: Array, like: Array, geo: Any) -> Array | None:
    """dL/dx (N, C, H, W) in ``like``'s memory order from :func:`max_pool`'s ``index``; None
    where ``dout`` is not a NumPy array of ``like``'s dtype (the caller then recomputes)."""
    moved = memory_order(like)
    if moved is None or type(dout) is not np.ndarray or dout.dtype != like.dtype:
        return None
    ddout = dout if moved is like else dout.transpose(1, 0, 2, 3)  # any strides: read as they are
    if ddout.shape != index.shape or moved.shape[:2] != index.shape[:2]:
        return None  # the loop indexes without bounds checks: never with shapes that disagree
    dx = np.empty(moved.shape, dtype=like.dtype)
    (kh, kw), (sh, sw), pads = geo.kernel, geo.stride, geo.pads
    _pools().pool_grad(threads.parts_for(dx.size), ddout, index, kh, kw, sh, sw, pads[0], pads[2], dx)
    return _as_nchw(dx, like, moved)


def im2col(moved: Array, geo: Any, n0: int, cols: Array) -> bool:
    """Fill ``cols`` (C, kh*kw, nc, H_out, W_out), C-contiguous, with the windows of samples
    ``n0 .. n0 + nc`` of ``moved`` (C, N, H, W), read as it lies (no padded copy); False where
    numba does not apply."""
    if not _takes(moved) or cols.dtype != moved.dtype:
        return False
    c, n, h, w = moved.shape
    (kh, kw), (sh, sw), (dh, dw), pads = geo.kernel, geo.stride, geo.dilation, geo.pads
    parts = threads.parts_for(cols.size)
    if _same(geo, (n, c, h, w)) and moved.flags.c_contiguous:
        flat = cols.reshape(c, kh * kw, cols.shape[2], h * w)
        _columns().im2col_same(parts, moved.reshape(c, n, h * w), n0, kh, kw, dh, dw, pads[0], pads[2], h, w,
                               flat)  # fmt: skip
    else:
        _columns().im2col(parts, moved, n0, kh, kw, sh, sw, dh, dw, pads[0], pads[2], cols)
    return True


def _same(geo: Any, x_shape: tuple[int, ...]) -> bool:
    """Stride 1 and an output of the input's size ("same" padding): the flat-plane loops."""
    return geo.stride == (1, 1) and tuple(geo.out) == tuple(x_shape[2:])


def col2im(dcols: Array, geo: Any, n0: int, dx: Array) -> bool:
    """Write samples ``n0 .. n0 + nc`` of dL/dx into ``dx`` (C, N, H, W), C-contiguous, from
    ``dcols`` (C, kh*kw, nc, H_out, W_out), C-contiguous; False where numba does not apply."""
    if not _takes(dcols) or not dcols.flags.c_contiguous or dx.dtype != dcols.dtype:
        return False
    c, n, h, w = dx.shape
    (kh, kw), (sh, sw), (dh, dw), pads = geo.kernel, geo.stride, geo.dilation, geo.pads
    parts = threads.parts_for(dcols.size)
    if _same(geo, (n, c, h, w)):
        flat = dcols.reshape(c, kh * kw, dcols.shape[2], h * w)
        flat_dx = dx.reshape(c, n, h * w)
        _columns().col2im_same(parts, flat, n0, kh, kw, dh, dw, pads[0], pads[2], h, w, flat_dx)
    else:
        _columns().col2im(parts, dcols, n0, kh, kw, sh, sw, dh, dw, pads[0], pads[2], dx)
    return True

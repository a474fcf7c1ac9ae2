"""Optional one-pass numba loops for MaxPool2D and Conv2D's im2col / col2im (the ``fast`` extra).

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
results keep the input's memory order. Like :mod:`xpnn.kernels.compile` (whose
:func:`~xpnn.kernels.compile.available` and ``enabled`` switch these off as well), numba is
imported at the first call only and compiled code is cached next to this file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.kernels import compile

Array = Any
_loops: Any = None  # xpnn.kernels.conv_loops, imported at the first call


def _kernels() -> Any:
    global _loops
    if _loops is None:
        from xpnn.kernels import conv_loops  # imports numba: only where available() found it

        _loops = conv_loops
    return _loops


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
    _kernels().pool(moved, kh, kw, sh, sw, pads[0], pads[2], out, index)
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
    _kernels().pool_grad(ddout, index, kh, kw, sh, sw, pads[0], pads[2], dx)
    return _as_nchw(dx, like, moved)


def im2col(x: Array, geo: Any) -> Array | None:
    """``cols`` (C*kh*kw, N*H_out*W_out) of :func:`~xpnn.kernels.conv.conv_forward`,
    read straight from ``x`` (N, C, H, W) (no padded copy); None where numba does not apply."""
    if not _takes(x):  # any strides: the loop reads the (C, N, H, W) view as it lies
        return None
    n, c = x.shape[:2]
    (ho, wo), (kh, kw), (sh, sw), (dh, dw), pads = geo.out, geo.kernel, geo.stride, geo.dilation, geo.pads
    cols = np.empty((c, kh * kw, n, ho, wo), dtype=x.dtype)
    moved = x.transpose(1, 0, 2, 3)
    if _same(geo, x.shape) and moved.flags.c_contiguous:
        flat = cols.reshape(c, kh * kw, n, ho * wo)
        _kernels().im2col_same(moved.reshape(c, n, ho * wo), kh, kw, dh, dw, pads[0], pads[2], ho, wo, flat)
    else:
        _kernels().im2col(moved, kh, kw, sh, sw, dh, dw, pads[0], pads[2], cols)
    return cols.reshape(c * kh * kw, n * ho * wo)


def _same(geo: Any, x_shape: tuple[int, ...]) -> bool:
    """Stride 1 and an output of the input's size ("same" padding): the flat-plane loops."""
    return geo.stride == (1, 1) and tuple(geo.out) == tuple(x_shape[2:])


def col2im(dcols: Array, geo: Any, x_shape: tuple[int, ...]) -> Array | None:
    """dL/dx (N, C, H, W), a view of channel-major memory, from ``dcols`` (C, kh*kw, N, H_out,
    W_out) C-contiguous; None where numba does not apply."""
    if not _takes(dcols) or not dcols.flags.c_contiguous:
        return None
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw), pads = geo.kernel, geo.stride, geo.dilation, geo.pads
    dx = np.empty((c, n, h, w), dtype=dcols.dtype)
    if _same(geo, x_shape):
        flat = dcols.reshape(c, kh * kw, n, h * w)
        _kernels().col2im_same(flat, kh, kw, dh, dw, pads[0], pads[2], h, w, dx.reshape(c, n, h * w))
    else:
        _kernels().col2im(dcols, kh, kw, sh, sw, dh, dw, pads[0], pads[2], dx)
    return dx.transpose(1, 0, 2, 3)

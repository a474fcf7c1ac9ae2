"""Fast path of training-mode batch normalization over (N, C, H, W) (:mod:`xpnn.functional.normalization`).

The plain equations make seven passes over the activations forward (``mean``, ``x - mean``,
its square, their mean, ``* invstd``, ``* weight``, ``+ bias``) and nine backward, each
writing a temporary as large as the input: in the CNN of ``benchmarks/conv.py`` a quarter of
the step on one thread. Here the sums stay NumPy's own reductions (``np.mean`` / ``np.sum``
over axes (0, 2, 3) of arrays in ``x``'s memory layout: the plain path's calls, so the same
order and bits) and the element-wise work runs in two numba passes each way, a block of
channels per thread:

- forward: ``d = x - mean`` into ``xhat`` and ``d * d`` into ``y`` (scratch for the
  variance's mean), then ``xhat = d * invstd`` and ``y = xhat * weight + bias``;
- backward: ``g * xhat`` into ``dx`` (scratch for ``dweight``'s sum), then
  ``dx = scale * (g - (t1 + xhat * t2))``.

Each element sees the plain equations' operations in their order, so the results are the
plain path's to the last bit on any number of threads (tested). Each function returns None
where it does not apply (not NumPy, not float32/float64 of one dtype, a layout other than
C-contiguous or channel-major, numba absent, the fast paths off): the caller runs the plain
equations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn.kernels import compile, threads

Array = Any
AXES = (0, 2, 3)
_FLOATS = (np.float32, np.float64)
_compiled: dict[str, Any] | None = None  # name -> jitted loop, built at the first call


def _rows(a: Array) -> tuple[Array, int] | None:
    """``(rows, channels)``: ``a`` (N, C, H, W) as a 2-D C-contiguous view whose row ``r`` holds
    channel ``r % channels`` (C-contiguous: rows ``n * C + c``; channel-major, the transposed view
    of a (C, N, H, W) block that the fused convolution returns: one row per channel); None for
    another layout."""
    if a.flags.c_contiguous:
        return a.reshape(a.shape[0] * a.shape[1], -1), a.shape[1]
    moved = a.transpose(1, 0, 2, 3)
    return (moved.reshape(a.shape[1], -1), a.shape[1]) if moved.flags.c_contiguous else None


def _takes(*arrays: Array) -> bool:
    """NumPy float32/float64 arrays of one dtype, the first (N, C, H, W) and not empty; numba on."""
    if not all(type(a) is np.ndarray for a in arrays):  # first: other libraries' dtypes do not compare
        return False
    first = arrays[0]
    if first.ndim != 4 or first.dtype not in _FLOATS or first.size == 0:
        return False
    return all(a.dtype == first.dtype for a in arrays) and compile.available()


def forward(x: Array, weight: Array, bias: Array, eps: float) -> tuple[Array, ...] | None:
    """``(y, xhat, mean, var, invstd)`` of training-mode batch norm with the batch's statistics
    (biased ``var``), ``y`` and ``xhat`` in ``x``'s memory layout; None where it does not apply."""
    if not _takes(x, weight, bias) or weight.shape != (x.shape[1],) or bias.shape != weight.shape:
        return None
    source = _rows(x)
    if source is None:
        return None
    y, xhat = np.empty_like(x), np.empty_like(x)  # order "K": x's layout, so the same rows
    rows = (source[0], _rows(xhat)[0], _rows(y)[0])  # type: ignore[index]
    loops, parts = _loops(), threads.parts_for(x.size)
    mean = np.mean(x, axis=AXES)
    loops["center"](parts, *rows, mean)
    var = np.mean(y, axis=AXES)  # of the squares, in x's layout: the plain path's order
    invstd = 1.0 / np.sqrt(var + eps)
    loops["scale"](parts, *rows[1:], invstd, weight, bias)
    return y, xhat, mean, var, invstd


def backward(g: Array, xhat: Array, scale: Array, count: float) -> tuple[Array, Array, Array] | None:
    """``(dx, dweight, dbias)``: ``dbias = sum g``, ``dweight = sum g * xhat`` per channel and
    ``dx = scale * (g - (dbias / m + xhat * (dweight / m)))``; None where ``g`` and ``xhat``
    differ in layout or it does not apply."""
    if not _takes(g, xhat, scale) or g.shape != xhat.shape or g.strides != xhat.strides:
        return None
    source = _rows(g)
    if source is None:
        return None
    dx = np.empty_like(g)
    rows = (source[0], _rows(xhat)[0], _rows(dx)[0])  # type: ignore[index]
    dbias = np.sum(g, axis=AXES)
    np.multiply(g, xhat, out=dx)
    dweight = np.sum(dx, axis=AXES)
    _loops()["grad"](threads.parts_for(g.size), *rows, dbias / count, dweight / count, scale)
    return dx, dweight, dbias


# -- the loops (plain Python here; compiled at first use), a block of rows per part --------------
def _center_loop(x: Array, d: Array, squares: Array, mean: Array, begin: int, end: int, parts: int) -> None:
    rows, width, channels = x.shape[0], x.shape[1], mean.shape[0]
    for part in range(begin, end):  # d = x - mean; squares = d * d
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            mu = mean[r % channels]
            for k in range(width):
                v = x[r, k] - mu
                d[r, k] = v
                squares[r, k] = v * v


def _scale_loop(xhat: Array, y: Array, invstd: Array, weight: Array, bias: Array,
                begin: int, end: int, parts: int) -> None:  # fmt: skip
    rows, width, channels = xhat.shape[0], xhat.shape[1], invstd.shape[0]
    for part in range(begin, end):  # xhat = d * invstd (in place); y = xhat * weight + bias
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            c = r % channels
            inv, w, b = invstd[c], weight[c], bias[c]
            for k in range(width):
                h = xhat[r, k] * inv
                xhat[r, k] = h
                y[r, k] = h * w + b


def _grad_loop(g: Array, xhat: Array, dx: Array, t1: Array, t2: Array, scale: Array,
               begin: int, end: int, parts: int) -> None:  # fmt: skip
    rows, width, channels = g.shape[0], g.shape[1], scale.shape[0]
    for part in range(begin, end):  # dx = scale * (g - (t1 + xhat * t2))
        for r in range(part * rows // parts, (part + 1) * rows // parts):
            c = r % channels
            a, b, s = t1[c], t2[c], scale[c]
            for k in range(width):
                dx[r, k] = s * (g[r, k] - (a + xhat[r, k] * b))


def _loops() -> dict[str, Any]:
    global _compiled
    if _compiled is None:
        loops = {"center": _center_loop, "scale": _scale_loop, "grad": _grad_loop}
        _compiled = {name: compile.threaded(loop) for name, loop in loops.items()}
    return _compiled

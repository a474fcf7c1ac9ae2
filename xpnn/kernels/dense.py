"""Fast paths of the affine map and ReLU (:mod:`xpnn.functional.linear`, ``activations``).

NumPy in place: ``x @ w + b`` with the bias added into the fresh product; weight gradients
written straight into a given array (the optimizer's flat gradient buffer); the bias gradient
by the ufunc's own reduce. numba loops: ReLU's gradient in one pass without storing its mask,
and a Dense followed by a ReLU as one pass each way (bias add and maximum over the fresh GEMM
product; the mask and the bias gradient, in place into the incoming gradient where the tape
says no one else holds it); ReLU's forward over large arrays (a convolution's output) on
several threads. Sums follow NumPy's order; every result is the plain equation's, bit for bit
(tested), on any number of threads: the loops split elements, rows or (for the bias gradient's
column sums) columns between them (:mod:`xpnn.kernels.threads`). Each returns None where it
does not apply or the fast paths are off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn import kernels
from xpnn.kernels import compile, threads

Array = Any
_u = np.uint64  # unsigned loop bounds: numba then skips the negative-index wraparound, which
# blocks vectorisation (an Adam step 7x slower with signed part bounds)
_FLOATS = (np.float32, np.float64)
_compiled: dict[str, Any] | None = None  # name -> jitted loop, built at the first call


# -- NumPy in place --------------------------------------------------------------------------------
def affine(x: Array, w: Array, b: Array) -> Array | None:
    """``x @ w + b`` with the bias added in place into the fresh product (one temporary fewer
    per Dense layer per step; the same additions, so the same bits)."""
    if type(x) is not np.ndarray or type(w) is not np.ndarray or not kernels.enabled():
        return None
    out = x @ w
    out += b
    return out


def matmul(a: Array, b: Array, out: Array = None) -> Array | None:
    """``a @ b`` (2-D) written into ``out`` where it fits (NumPy arrays of one dtype): a layer
    writes a weight gradient straight into the flat gradient buffer. The same GEMM, the same bits."""
    if (
        kernels.enabled()
        and type(out) is np.ndarray
        and type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.dtype == b.dtype == out.dtype
        and out.shape == (a.shape[0], b.shape[1])
    ):
        return np.matmul(a, b, out=out)
    return None


def sum_rows(x: Array, out: Array = None) -> Array | None:
    """``sum(x, axis=0)`` by the ufunc's own reduce (the same sum as ``np.sum`` without its
    Python wrapper: 1 of 2 us), written into ``out`` where one is given and fits."""
    if type(x) is not np.ndarray or not kernels.enabled():
        return None
    fits = type(out) is np.ndarray and out.dtype == x.dtype and out.shape == x.shape[1:]
    return np.add.reduce(x, axis=0, out=out if fits else None)


# -- numba: ReLU's gradient, and Dense + ReLU in one pass each way ---------------------------------
def relu_grad(x: Array, dout: Array, in_place: bool = False) -> Array | None:
    """``astype(x > 0, dout.dtype) * dout`` in one pass into a fresh array, or into ``dout``
    itself when ``in_place`` (a gradient no one else holds), in ``dout``'s memory order (the
    plain form makes a boolean mask, casts it and multiplies: three passes, two temporaries);
    None where numba is absent or the arrays are not NumPy float arrays of one dtype, shape and
    dense layout (C-contiguous, or a transposed view of it such as a fused convolution's
    channel-major output)."""
    if type(x) is not np.ndarray or type(dout) is not np.ndarray or x.dtype != dout.dtype:
        return None
    if x.shape != dout.shape or x.dtype not in (np.float32, np.float64) or not compile.available():
        return None
    if not (x.flags.c_contiguous and dout.flags.c_contiguous) and x.strides != dout.strides:
        return None  # two layouts: flat views in memory order would not line up
    if in_place and dout.flags.writeable:  # its own loop: beside an output that is dout itself,
        flat = [_memory_order_flat(a) for a in (x, dout)]  # LLVM's overlap check runs it scalar
        if any(f is None for f in flat):
            return None
        _loops()["relu_grad_in_place"](threads.parts_for(dout.size), *flat)
        return dout
    out = np.empty(dout.shape, dtype=dout.dtype) if dout.flags.c_contiguous else np.empty_like(dout)
    flat = [_memory_order_flat(a) for a in (x, dout, out)]
    if any(f is None for f in flat):
        return None
    _loops()["relu_grad"](threads.parts_for(out.size), *flat)
    return out


def relu(x: Array) -> Array | None:
    """``maximum(x, 0.0)`` into a fresh array in ``x``'s memory order, on as many threads as
    allowed; None where numba is absent or ``x`` is not a dense NumPy float array. NumPy's
    ``maximum`` (NaN-propagating) took 3-4x the loop's time here on one thread too: 12.9 against
    3.4 us for a (128, 256) float32 array, 98.7 against 24.5 for (512, 512)."""
    if type(x) is not np.ndarray or x.dtype not in _FLOATS or not compile.available():
        return None
    flat = _memory_order_flat(x)
    if flat is None:
        return None
    out = np.empty(x.shape, dtype=x.dtype) if x.flags.c_contiguous else np.empty_like(x)
    _loops()["relu"](threads.parts_for(x.size), flat, _memory_order_flat(out))
    return out


def _memory_order_flat(a: Array) -> Array | None:
    """``a`` as a 1-D view in memory order: C-contiguous, or an axis permutation of such an
    array (its strides sorted); None where the elements are not one dense block."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    moved = a.transpose(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))
    return moved.reshape(-1) if moved.flags.c_contiguous else None


def _matrix(x: Array) -> bool:
    return type(x) is np.ndarray and x.ndim == 2 and x.dtype in _FLOATS and x.flags.c_contiguous


def bias_relu(out: Array, bias: Array) -> Array | None:
    """``maximum(out + bias, 0.0)`` written into ``out`` (a fresh GEMM product no one else holds):
    Dense's bias add and the next ReLU in one pass."""
    if not _matrix(out) or type(bias) is not np.ndarray or bias.dtype != out.dtype:
        return None
    if bias.shape != out.shape[1:] or not out.flags.writeable or not compile.available():
        return None
    _loops()["bias_relu"](threads.parts_for(out.size), out, bias)
    return out


def relu_grad_bias(y: Array, dout: Array, db: Array | None, in_place: bool) -> tuple[Array, Array] | None:
    """``(dx, db)``: ReLU's ``dx = astype(y > 0) * dout`` (``y`` its output: ``y > 0`` exactly
    where its input was) and the previous Dense's bias gradient ``sum(dx, axis=0)`` in one pass;
    ``dx`` written into ``dout`` when ``in_place`` (a fresh product no one else holds), ``db``
    into ``db`` where one that fits is given (the flat gradient buffer)."""
    if not _matrix(y) or not _matrix(dout) or y.dtype != dout.dtype or y.shape != dout.shape:
        return None
    if y.shape[0] == 0 or y.shape[1] < 2 or not compile.available():
        return None  # a single column NumPy sums pairwise, not row by row
    out = dout if in_place and dout.flags.writeable else dout.copy()
    fits = (
        type(db) is np.ndarray and db.dtype == y.dtype and db.shape == y.shape[1:] and db.flags.c_contiguous
    )
    db = db if fits else np.empty(y.shape[1], y.dtype)
    _loops()["relu_grad_bias"](threads.parts_for(out.size), y, out, db)
    return out, db


# -- the loops (plain Python here; compiled at first use), each split into ``parts`` -------------
def _relu_grad_loop(x: Array, dout: Array, out: Array, begin: int, end: int, parts: int) -> None:
    one, zero, n = out.dtype.type(1), out.dtype.type(0), out.shape[0]
    for part in range(begin, end):  # ReLU.backward: astype(x > 0) * dout, the 0/1 mask never stored
        for i in range(_u(part * n // parts), _u((part + 1) * n // parts)):
            out[i] = (one if x[i] > 0 else zero) * dout[i]


def _relu_grad_in_place_loop(x: Array, d: Array, begin: int, end: int, parts: int) -> None:
    one, zero, n = d.dtype.type(1), d.dtype.type(0), d.shape[0]
    for part in range(begin, end):  # d = astype(x > 0) * d, element by element
        for i in range(_u(part * n // parts), _u((part + 1) * n // parts)):
            d[i] = (one if x[i] > 0 else zero) * d[i]


def _relu_loop(x: Array, out: Array, begin: int, end: int, parts: int) -> None:
    zero, n = out.dtype.type(0), out.shape[0]
    for part in range(begin, end):  # maximum(x, 0.0): NaN kept, -0.0 -> 0.0 (NumPy's bits)
        for i in range(_u(part * n // parts), _u((part + 1) * n // parts)):
            v = x[i]
            out[i] = v if (v > zero or v != v) else zero


def _bias_relu_loop(out: Array, bias: Array, begin: int, end: int, parts: int) -> None:
    zero, rows = out.dtype.type(0), out.shape[0]
    for part in range(begin, end):  # maximum(out + bias, 0.0), in place, a block of rows each
        for i in range(_u(part * rows // parts), _u((part + 1) * rows // parts)):
            for j in range(out.shape[1]):
                v = out[i, j] + bias[j]
                out[i, j] = v if (v > zero or v != v) else zero


def _relu_grad_bias_loop(y: Array, d: Array, db: Array, begin: int, end: int, parts: int) -> None:
    # d = astype(y > 0) * d in place; db = sum(d, axis=0), row after row, a block of columns per
    # part (each column's sum in NumPy's order). In place and row by row: with an output array
    # beside d, LLVM's overlap check fails for d itself and the loop runs scalar
    one, zero, columns = d.dtype.type(1), d.dtype.type(0), d.shape[1]
    for part in range(begin, end):
        lo, hi = _u(part * columns // parts), _u((part + 1) * columns // parts)
        for j in range(lo, hi):
            v = (one if y[0, j] > 0 else zero) * d[0, j]
            d[0, j] = v
            db[j] = zero + v
        for i in range(1, d.shape[0]):
            for j in range(lo, hi):
                v = (one if y[i, j] > 0 else zero) * d[i, j]
                d[i, j] = v
                db[j] = db[j] + v


def _loops() -> dict[str, Any]:
    global _compiled
    if _compiled is None:
        loops = {
            "relu_grad": _relu_grad_loop,
            "relu_grad_in_place": _relu_grad_in_place_loop,
            "relu": _relu_loop,
            "bias_relu": _bias_relu_loop,
            "relu_grad_bias": _relu_grad_bias_loop,
        }
        _compiled = {name: compile.threaded(loop) for name, loop in loops.items()}
    return _compiled

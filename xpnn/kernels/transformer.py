"""Optional fast paths for a transformer's work between its GEMMs: loops compiled by numba,
and NumPy products written in place.

As plain NumPy calls, the work between the GEMMs of a small GPT step (nanoGPT's CPU
configuration, one thread) took 34 of its 77 ms: every call makes a temporary and walks an
array that the last GEMM pushed out of the cache (GELU-tanh alone is nine passes forward and
twelve back over the (batch * time, 4 * dim) activations). With the paths here it takes 18 of
61 ms. The loops make one pass each and keep NumPy's own SIMD ``tanh`` and ``exp`` between
them (numba calls the scalar libm functions, several times slower):

- GELU: :mod:`xpnn.kernels.gelu`.
- LayerNorm: each row's mean, variance, ``xhat`` and ``y`` in one kernel; ``dx`` and the
  ``dweight``/``dbias`` column sums (NumPy's order: the same bits) in another.
- Attention: the scores scaled and masked with their row maxima subtracted in one pass,
  NumPy's ``exp`` in place, then each row normalized; softmax's backward in one pass; the
  products written by ``np.matmul(..., out=)`` into strided views of the merged heads and the
  packed gradient (BLAS takes the leading dimension: no stack, no copy).
- Embedding: the gradient's scatter-add as one loop, ``np.add.at``'s additions in its order
  (the same bits) without its per-index cost.

The row sums of LayerNorm and softmax may be reordered (the loops are compiled with LLVM's
``reassoc`` flag, so they vectorise instead of waiting on one chain of additions), so they
equal the plain equations to float rounding, not bit for bit (tests compare at 1e-6 in float32).
Each row is computed whole by one thread, so large batches split into blocks of rows over
several threads (:mod:`xpnn.kernels.threads`) with the same bits; LayerNorm's backward (its
column sums run over the rows) and the embedding's scatter-add stay on one.

Every function returns None where it does not apply (numba absent or
the fast paths off, not NumPy float arrays of one dtype in the layout
the loop needs, a mask of another shape) and then changes nothing: the caller runs its plain code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnn import kernels
from xpnn.kernels import compile, threads

Array = Any

_compiled: dict[str, Any] | None = None
_FLOATS = (np.float32, np.float64)


# -- the loops (plain Python here; compiled at first use) ----------------------------------------
def _layer_norm_loop(
    x: Array,
    w: Array,
    b: Array,
    eps: Any,
    y: Array,
    xhat: Array,
    rstd: Array,
    begin: int,
    end: int,
    parts: int,
) -> None:
    n, count, one = x.shape[1], x.dtype.type(x.shape[1]), x.dtype.type(1)
    items = x.shape[0]
    for part in range(begin, end):  # the row sums vectorise: compiled with reassociation allowed
        for r in range(part * items // parts, (part + 1) * items // parts):
            total = x.dtype.type(0)
            for j in range(n):
                total += x[r, j]
            mean = total / count
            square = x.dtype.type(0)
            for j in range(n):
                c = x[r, j] - mean
                square += c * c
            s = one / np.sqrt(square / count + eps)
            rstd[r, 0] = s
            for j in range(n):  # without weight and bias: w = 1, b = 0 (h * 1 + 0 is h exactly)
                h = (x[r, j] - mean) * s
                xhat[r, j] = h
                y[r, j] = h * w[j] + b[j]


def _layer_norm_grad_loop(
    g: Array, xhat: Array, rstd: Array, w: Array, dx: Array, dw: Array, db: Array
) -> None:
    n, count = g.shape[1], g.dtype.type(g.shape[1])
    for r in range(g.shape[0]):
        sum_d = g.dtype.type(0)
        sum_dx = g.dtype.type(0)
        for j in range(n):
            gj, hj = g[r, j], xhat[r, j]
            dw[j] += gj * hj  # the column sums row after row: NumPy's order for sum(axis=0)
            db[j] += gj
            d = gj * w[j]
            sum_d += d
            sum_dx += d * hj
        mean_d, mean_dx, s = sum_d / count, sum_dx / count, rstd[r, 0]
        for j in range(n):
            dx[r, j] = s * (g[r, j] * w[j] - mean_d - xhat[r, j] * mean_dx)


def _shift_loop(s: Array, mask: Array, scale: Any, ninf: Any, begin: int, end: int, parts: int) -> None:
    rows, n = mask.shape[0], s.shape[1]
    quads = n - n % 4
    items = s.shape[0]
    for part in range(begin, end):  # scores * scale, -inf where masked out, minus the row maximum
        for r in range(part * items // parts, (part + 1) * items // parts):
            i = r % rows
            for j in range(n):
                s[r, j] = s[r, j] * scale if mask[i, j] else ninf
            m0 = m1 = m2 = m3 = ninf  # four running maxima: one chain would wait on each comparison
            for j in range(0, quads, 4):
                m0, m1 = max(m0, s[r, j]), max(m1, s[r, j + 1])
                m2, m3 = max(m2, s[r, j + 2]), max(m3, s[r, j + 3])
            for j in range(quads, n):
                m0 = max(m0, s[r, j])
            m = max(max(m0, m1), max(m2, m3))
            for j in range(n):
                s[r, j] = s[r, j] - m


def _normalize_loop(e: Array, begin: int, end: int, parts: int) -> None:
    items = e.shape[0]
    for part in range(begin, end):
        for r in range(part * items // parts, (part + 1) * items // parts):
            total = e.dtype.type(0)
            for j in range(e.shape[1]):
                total += e[r, j]
            for j in range(e.shape[1]):
                e[r, j] = e[r, j] / total


def _softmax_grad_loop(p: Array, dp: Array, scale: Any, begin: int, end: int, parts: int) -> None:
    items = p.shape[0]
    for part in range(begin, end):  # in place into dp: p * (dp - sum(dp * p)) * scale
        for r in range(part * items // parts, (part + 1) * items // parts):
            total = p.dtype.type(0)
            for j in range(p.shape[1]):
                total += dp[r, j] * p[r, j]
            for j in range(p.shape[1]):
                dp[r, j] = p[r, j] * (dp[r, j] - total) * scale


def _embedding_grad_loop(ids: Array, g: Array, out: Array) -> None:
    for i in range(ids.shape[0]):  # np.add.at(out, ids, g): the same additions in the same order
        row = ids[i]
        for c in range(g.shape[1]):
            out[row, c] += g[i, c]


def _kernels() -> dict[str, Any]:
    global _compiled
    if _compiled is None:
        # row sums: reassociation lets them vectorise (one chain of adds: 4 cycles each); LLVM's
        # reassoc and nsz flags only: no approximate functions, no fused multiply-add
        reorder = {"fastmath": {"reassoc", "nsz"}}
        _compiled = {
            "shift": compile.threaded(_shift_loop),
            "embedding_grad": compile.jit(_embedding_grad_loop),
            "layer_norm_grad": compile.jit(_layer_norm_grad_loop, **reorder),
        }
        summing = {
            "layer_norm": _layer_norm_loop,
            "normalize": _normalize_loop,
            "softmax_grad": _softmax_grad_loop,
        }
        _compiled.update({name: compile.threaded(loop, **reorder) for name, loop in summing.items()})
    return _compiled


# -- the entry points: the result, or None where a loop does not apply ---------------------------
def dense_floats(*arrays: Array) -> bool:
    """C-contiguous NumPy float arrays of one dtype, numba available."""
    first = arrays[0]
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != first.dtype or not a.flags.c_contiguous:
            return False
    return first.dtype in _FLOATS and first.size > 0 and compile.available()


def layer_norm(
    x: Array, weight: Array | None, bias: Array | None, eps: float
) -> tuple[Array, Array, Array] | None:
    """``(y, xhat, rstd)`` of layer normalization over the last axis (``rstd``: (..., 1))."""
    params = [p for p in (weight, bias) if p is not None]
    if not dense_floats(x, *params) or x.ndim < 1 or any(p.shape != x.shape[-1:] for p in params):
        return None
    n = x.shape[-1]
    y, xhat = np.empty_like(x), np.empty_like(x)
    rstd = np.empty((*x.shape[:-1], 1), dtype=x.dtype)
    w = np.ones(n, x.dtype) if weight is None else weight
    b = np.zeros(n, x.dtype) if bias is None else bias
    rows = (
        x.reshape(-1, n),
        w,
        b,
        x.dtype.type(eps),
        y.reshape(-1, n),
        xhat.reshape(-1, n),
        rstd.reshape(-1, 1),
    )
    _kernels()["layer_norm"](threads.parts_for(x.size), *rows)
    return y, xhat, rstd


def layer_norm_backward(
    g: Array, xhat: Array, rstd: Array, weight: Array | None
) -> tuple[Array, Array, Array] | None:
    """LayerNorm's ``(dx, dweight, dbias)`` (see :mod:`xpnn.functional.layer_norm`) in one pass;
    ``dweight`` and ``dbias`` summed over the rows in NumPy's order (the same bits)."""
    if not dense_floats(g, xhat, rstd, *([] if weight is None else [weight])) or g.shape != xhat.shape:
        return None
    n = g.shape[-1]
    dx, dw, db = np.empty_like(g), np.zeros(n, g.dtype), np.zeros(n, g.dtype)
    w = np.ones(n, g.dtype) if weight is None else weight
    rows = (g.reshape(-1, n), xhat.reshape(-1, n), rstd.reshape(-1, 1))
    _kernels()["layer_norm_grad"](*rows, w, dx.reshape(-1, n), dw, db)
    return dx, dw, db


def masked_softmax(scores: Array, mask: Array | None, scale: float) -> Array | None:
    """``softmax(where(mask, scale * scores, -inf))`` over the last axis, IN PLACE into the
    fresh ``scores`` (a matmul's output: nothing else holds it); ``mask`` None or boolean
    ``(time_q, time_k)``, broadcast over the leading axes."""
    if not dense_floats(scores) or scores.ndim < 2:
        return None
    if mask is not None and (type(mask) is not np.ndarray or mask.dtype != np.bool_
                             or mask.shape != scores.shape[-2:] or not mask.flags.c_contiguous):  # fmt: skip
        return None
    kernels, rows = _kernels(), scores.reshape(-1, scores.shape[-1])
    dt = scores.dtype.type
    allowed = np.ones((1, rows.shape[1]), dtype=np.bool_) if mask is None else mask
    parts = threads.parts_for(rows.size)
    kernels["shift"](parts, rows, allowed, dt(scale), dt(-np.inf))
    np.exp(rows, out=rows)
    kernels["normalize"](parts, rows)
    return scores


def embedding_backward(ids: Array, g: Array, shape: tuple[int, int]) -> Array | None:
    """``add_at(zeros(shape), ids, g)`` (rows of ``g`` added at the 1-D int ``ids``): numba's loop
    makes NumPy's ``add.at`` additions in its order (the same bits), without its per-index cost
    (878 against 20 us for a 12x64 batch into a 166x128 table). Ids out of range: None."""
    if not dense_floats(g) or type(ids) is not np.ndarray or ids.dtype.kind not in "iu" or g.ndim != 2:
        return None
    if ids.shape[0] != g.shape[0] or g.shape[1] != shape[1] or ids.size == 0:
        return None
    if ids.min() < 0 or ids.max() >= shape[0]:
        return None  # the plain path raises its own error
    out = np.zeros(shape, dtype=g.dtype)
    _kernels()["embedding_grad"](ids, g, out)
    return out


def empty_for(like: Array, shape: tuple[int, ...]) -> Array | None:
    """An empty NumPy array of ``like``'s dtype where ``like`` is a NumPy float array (a buffer
    the fast paths write into), else None."""
    if type(like) is not np.ndarray or like.dtype not in _FLOATS or not kernels.enabled():
        return None
    return np.empty(shape, dtype=like.dtype)


def matmul_into(a: Array, b: Array, out: Array) -> Array | None:
    """``a @ b`` written into ``out`` (NumPy float arrays of one dtype; ``out`` may be a strided
    view, such as one head's slice of a packed array: BLAS writes it with its leading
    dimension, no copy), else None."""
    if type(a) is not np.ndarray or type(b) is not np.ndarray or type(out) is not np.ndarray:
        return None
    if not kernels.enabled():
        return None
    if not a.dtype == b.dtype == out.dtype or out.shape != (*a.shape[:-1], b.shape[-1]):
        return None
    return np.matmul(a, b, out=out)


def softmax_backward(p: Array, dp: Array, scale: float) -> Array | None:
    """``p * (dp - sum(dp * p)) * scale`` over the last axis, IN PLACE into the fresh ``dp``."""
    if not dense_floats(p, dp) or p.shape != dp.shape or p.ndim < 2:
        return None
    n = p.shape[-1]
    _kernels()["softmax_grad"](
        threads.parts_for(p.size), p.reshape(-1, n), dp.reshape(-1, n), p.dtype.type(scale)
    )
    return dp

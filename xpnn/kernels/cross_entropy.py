"""Fast paths of softmax and cross-entropy (:mod:`xpnn.functional.losses`, ``activations``).

NumPy: row reductions by the ufuncs' own ``reduce`` (a fraction of ``np.max``'s per-call cost
on small batches), the label pick and the one-hot subtraction by integer indexing. numba:

In a training step of a small MLP the elementwise work after each GEMM is tiny (a 256x10
softmax, a 256x350 ReLU) but every NumPy call on it runs with the caches just emptied by the
GEMMs: the plain softmax cross-entropy (~14 calls) measured 0.19 ms per step in the timed loop
against 0.05 ms on its own. The loops here do that work in two or three calls.

They compute the numbers of the plain equations to the last bit. Sums follow NumPy's own
order: ``add.reduce`` along a contiguous axis is its pairwise summation (:func:`_pairwise_sum`,
a copy of ``pairwise_sum`` in NumPy's ``loops_utils.h.src``), a column sum of a C-contiguous
matrix adds row after row (a single column: pairwise again), each added to the identity 0.0
(so a sum of -0.0s is 0.0, as NumPy's). ``exp`` and ``log`` stay NumPy's
ufuncs, called between the loops: its SIMD ``exp``/``log`` round differently from the libm
functions numba calls. Maxima follow ``np.maximum``: NaN propagates, of two equal values
(0.0 and -0.0) the second is kept. Tests compare every result bit for bit with the plain path.

Large batches (a language model's rows of a big vocabulary) run on several threads, each a
block of rows (:mod:`xpnn.kernels.threads`): every row's numbers are computed whole by one
thread in the serial order, so the bits do not change; the loss's mean over rows stays serial.

Every function returns None where it does not apply (numba absent or
the fast paths off, not C-contiguous NumPy float arrays of one dtype,
empty, or a label out of range) and changes nothing then: the caller runs its plain code.
"""

from __future__ import annotations

import sys
from typing import Any

import array_api_compat
import numpy as np

from xpnn import kernels
from xpnn.kernels import compile, threads
from xpnn.kernels.dense import _matrix

Array = Any
_compiled: dict[str, Any] | None = None  # name -> jitted loop, built at the first call


# -- NumPy -------------------------------------------------------------------------------------------
def row_max(x: Array) -> Array | None:
    """``max(x, axis=-1, keepdims=True)`` by the ufunc's own reduce (1.2 us against np.max's
    3.7 us on a 32x10 batch of logits: per-call cost decides small models)."""
    return (
        np.maximum.reduce(x, axis=-1, keepdims=True) if type(x) is np.ndarray and kernels.enabled() else None
    )


def row_sum(x: Array) -> Array | None:
    """``sum(x, axis=-1, keepdims=True)`` by the ufunc's own reduce (the same sum)."""
    return np.add.reduce(x, axis=-1, keepdims=True) if type(x) is np.ndarray and kernels.enabled() else None


def take_at_labels(x: Array, labels: Array) -> Array | None:
    """``x[i, labels[i]]`` for every row ``i``, shape (rows, 1), by integer-array indexing:
    NumPy's ``take_along_axis`` is Python-level index building (~4 us on a 32x10 batch; ~1 us)."""
    if type(x) is np.ndarray and kernels.enabled():
        return x[np.arange(labels.shape[0]), labels][:, None]
    return None


def add_at_labels(x: Array, labels: Array, value: float) -> Array | None:
    """``x[i, labels[i]] += value`` for every row ``i``, in place by integer-array indexing
    (NumPy, CuPy, torch): the softmax-cross-entropy backward subtracts the one-hot so."""
    rows = labels.shape[0]
    if not kernels.enabled():
        return None
    if array_api_compat.is_numpy_array(x) and x.flags.writeable:
        x[np.arange(rows), labels] += value
        return x
    if array_api_compat.is_cupy_array(x):
        x[sys.modules["cupy"].arange(rows), labels] += value
        return x
    if array_api_compat.is_torch_array(x):
        x[sys.modules["torch"].arange(rows, device=x.device), labels] += value
        return x
    return None


# -- numba: the loss in three loops and the gradient in one pass --------------------------------
def _labels_for(z: Array, labels: Array) -> bool:
    """``z`` a non-empty (rows, classes) float matrix, ``labels`` its int64 (rows,) labels."""
    return (
        _matrix(z)
        and z.size > 0
        and type(labels) is np.ndarray
        and labels.dtype == np.int64
        and labels.shape == z.shape[:1]
        and compile.available()
    )


def softmax_cross_entropy(z: Array, labels: Array) -> tuple[Array, Array] | None:
    """``(loss, probs)`` of :class:`~xpnn.SoftmaxCrossEntropy` on logits ``z`` and int64 labels:
    the 0-d mean ``sum(log(sum(exp(s))) - s[label]) / rows`` of ``s = z - max(z)`` and
    ``probs = exp(s) / sum(exp(s))``, in three loops and NumPy's ``exp`` and ``log``."""
    if not _labels_for(z, labels):
        return None
    kernels, parts = _loops(), threads.parts_for(z.size)
    rows = z.shape[0]
    probs, picked = np.empty_like(z), np.empty(rows, z.dtype)
    if kernels["xent_shift"](parts, z, labels, probs, picked) >= 0:
        return None  # a label out of range: the caller's checks name it
    np.exp(probs, out=probs)
    total = np.empty(rows, z.dtype)
    kernels["xent_normalize"](parts, probs, total)
    np.log(total, out=total)
    loss = kernels["xent_mean"](total, picked, z.dtype.type(rows))
    return np.asarray(loss, dtype=z.dtype), probs


def softmax_cross_entropy_grad(probs: Array, labels: Array) -> Array | None:
    """``(probs - onehot(labels)) / rows`` in one pass into a fresh array (as the plain
    ``probs * (1/rows)``, then ``- 1/rows`` at each label)."""
    if not _labels_for(probs, labels):
        return None
    out = np.empty_like(probs)
    scale = probs.dtype.type(1.0 / probs.shape[0])
    return None if _loops()["xent_grad"](threads.parts_for(out.size), probs, labels, scale, out) >= 0 else out


# -- the loops (plain Python here; compiled at first use) ---------------------------------------
def _block_sum(a: Array, start: int, n: int) -> Any:
    """NumPy's pairwise sum of ``a[start:start + n]`` for ``n <= 128``: ``-0.0 + ...`` below 8
    values, else eight accumulators, their tree, then the rest one by one."""
    if n < 8:
        res = a.dtype.type(-0.0)
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = start + 8
    stop = start + n - n % 8
    while i < stop:
        r0, r1, r2, r3 = r0 + a[i], r1 + a[i + 1], r2 + a[i + 2], r3 + a[i + 3]
        r4, r5, r6, r7 = r4 + a[i + 4], r5 + a[i + 5], r6 + a[i + 6], r7 + a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + n:
        res += a[i]
        i += 1
    return res


def _pairwise_sum(a: Array, start: int, n: int) -> Any:
    """NumPy's pairwise sum of ``a[start:start + n]``: runs over 128 values split in two halves
    (the first rounded down to a multiple of 8), summed each and added. Walked with an explicit
    stack: numba's cache cannot reload a recursive function."""
    if n <= 128:
        return _block_sum(a, start, n)
    starts, sizes = np.empty(128, np.int64), np.empty(128, np.int64)  # tasks; size -1: add two partials
    partials = np.empty(64, a.dtype)
    starts[0], sizes[0] = start, n
    tasks, done = 1, 0
    while tasks:
        tasks -= 1
        s, m = starts[tasks], sizes[tasks]
        if m < 0:
            done -= 1
            partials[done - 1] = partials[done - 1] + partials[done]
        elif m <= 128:
            partials[done] = _block_sum(a, s, m)
            done += 1
        else:
            half = m // 2 - (m // 2) % 8
            starts[tasks], sizes[tasks] = s, -1  # after both halves: their sum
            starts[tasks + 1], sizes[tasks + 1] = s + half, m - half
            starts[tasks + 2], sizes[tasks + 2] = s, half  # popped first: the left half
            tasks += 3
    return partials[0]


def _xent_shift_loop(
    z: Array, labels: Array, shifted: Array, picked: Array, begin: int, end: int, parts: int
) -> int:
    # -1, or the first row whose label is out of range (checked before anything is written)
    rows, classes = z.shape
    for i in range(rows):
        if labels[i] < 0 or labels[i] >= classes:
            return i
    for part in range(begin, end):  # shifted = z - max(z, axis=-1); picked = shifted at the label
        for i in range(part * rows // parts, (part + 1) * rows // parts):
            m = z[i, 0]
            for j in range(1, classes):
                v = z[i, j]
                m = m if (m > v or m != m) else v
            for j in range(classes):
                shifted[i, j] = z[i, j] - m
            picked[i] = shifted[i, labels[i]]
    return -1


def _xent_normalize_loop(exp: Array, total: Array, begin: int, end: int, parts: int) -> None:
    rows = exp.shape[0]
    for part in range(begin, end):  # total = sum(exp, axis=-1); exp / total, in place
        for i in range(part * rows // parts, (part + 1) * rows // parts):
            t = exp.dtype.type(0) + _pairwise_sum(exp[i], 0, exp.shape[1])
            total[i] = t
            for j in range(exp.shape[1]):
                exp[i, j] = exp[i, j] / t


def _xent_mean_loop(log_total: Array, picked: Array, rows: Any) -> Any:
    for i in range(log_total.shape[0]):  # sum(log_total - picked) / rows
        log_total[i] = log_total[i] - picked[i]
    return (log_total.dtype.type(0) + _pairwise_sum(log_total, 0, log_total.shape[0])) / rows


def _xent_grad_loop(
    probs: Array, labels: Array, scale: Any, out: Array, begin: int, end: int, parts: int
) -> int:
    rows, classes = probs.shape
    for i in range(rows):
        if labels[i] < 0 or labels[i] >= classes:
            return i
    for part in range(begin, end):  # probs * scale, and scaled - scale at the label
        for i in range(part * rows // parts, (part + 1) * rows // parts):
            for j in range(classes):
                out[i, j] = probs[i, j] * scale
            out[i, labels[i]] = out[i, labels[i]] - scale
    return -1


def _loops() -> dict[str, Any]:
    global _compiled, _block_sum, _pairwise_sum
    if _compiled is None:  # the two sums first: the loops call them
        _block_sum = compile.jit(_block_sum)
        _pairwise_sum = compile.jit(_pairwise_sum)
        loops = {"xent_shift": _xent_shift_loop, "xent_normalize": _xent_normalize_loop,
                 "xent_grad": _xent_grad_loop}  # fmt: skip
        _compiled = {name: compile.threaded(loop) for name, loop in loops.items()}
        _compiled["xent_mean"] = compile.jit(_xent_mean_loop)
    return _compiled

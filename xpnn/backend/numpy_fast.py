"""Optional fast paths: in-place NumPy kernels beside the plain Array API equations.

Each function here computes exactly what the plain Array API expression beside its caller
computes (same floating-point operations in the same order, tested bit for bit), but in
place or with integer-array indexing where the backend allows it: on NumPy, temporaries
and Python-level index building cost more than the arithmetic on small and medium arrays.
Each falls back to the standard form (or returns False) elsewhere.
"""

from __future__ import annotations

import sys
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backend import device_of, namespace

Array = Any


# -- optional fused fast paths (Chainer's update_core_cpu beside the plain equations) ----------
# Each computes exactly the plain Array API expressions of its optimizer, in the same order of
# floating-point operations, but in place with one temporary instead of one per operation:
# on NumPy the plain path's temporaries (and the final copy) cost more than the arithmetic.
# Each returns False where it does not apply; tests assert bit-identical results.


_PIECE = 65536  # elements per pass: five float32 pieces (value, grad, two moments, temporary) fit in L2


def _all_writeable_numpy(*arrays: Array) -> bool:
    return all(array_api_compat.is_numpy_array(a) and a.flags.writeable for a in arrays)


def _pieces(*arrays: Array) -> list[tuple[Array, ...]]:
    """Matching pieces of ``_PIECE`` elements of equally shaped arrays, so that a chain of
    passes runs in cache (Adam's step over a 235,146-parameter MLP: 461 -> 395 us);
    the whole arrays where one is not contiguous (a reshape would copy)."""
    if arrays[0].size <= _PIECE or not all(a.flags.c_contiguous for a in arrays):
        return [arrays]
    flat = [a.reshape(-1) for a in arrays]
    return [tuple(f[start : start + _PIECE] for f in flat) for start in range(0, flat[0].shape[0], _PIECE)]


def _scratch(like: Array) -> Array:
    return np.empty(min(like.size, _PIECE), dtype=like.dtype)


def fused_adam(
    value: Array,
    grad: Array,
    m: Array,
    v: Array,
    *,
    betas: tuple[float, float],
    step_size: float,
    bias2_root: float,
    eps: float,
    shrink: float = 1.0,
) -> bool:
    """In place: ``value *= shrink`` (AdamW's decoupled decay), ``m = b1*m + (1-b1)*g;
    v = b2*v + (1-b2)*g*g; value -= m * ((step_size * bias2_root) / (sqrt(v) + eps * bias2_root))``
    (NumPy only), piece by piece."""
    if not _all_writeable_numpy(value, m, v) or not array_api_compat.is_numpy_array(grad):
        return False
    beta1, beta2 = betas
    scratch = _scratch(value)
    for w, g, m_, v_ in _pieces(value, grad, m, v):
        tmp = scratch[: w.size].reshape(w.shape)
        if shrink != 1.0:
            w *= shrink
        np.multiply(g, 1.0 - beta1, out=tmp)
        m_ *= beta1
        m_ += tmp
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - beta2
        v_ *= beta2
        v_ += tmp
        np.sqrt(v_, out=tmp)
        tmp += eps * bias2_root
        np.divide(step_size * bias2_root, tmp, out=tmp)
        tmp *= m_
        w -= tmp
    return True


def fused_sgd(
    value: Array, grad: Array, lr: float, buf: Array = None, *, momentum: float = 0.0, dampening: float = 0.0
) -> bool:
    """In place: ``value -= lr * grad``; with ``buf`` (torch-style momentum after the first
    step): ``buf = momentum * buf + (1 - dampening) * grad; value -= lr * buf`` (NumPy only),
    piece by piece (plain SGD over 408,210 parameters: 239 -> 121 us)."""
    if not _all_writeable_numpy(value) or not array_api_compat.is_numpy_array(grad):
        return False
    if buf is not None and not _all_writeable_numpy(buf):
        return False
    scratch = _scratch(value)
    for w, g, *rest in _pieces(value, grad, *([] if buf is None else [buf])):
        tmp = scratch[: w.size].reshape(w.shape)
        if not rest:
            np.multiply(g, lr, out=tmp)
        else:
            b = rest[0]
            np.multiply(g, 1.0 - dampening, out=tmp)
            b *= momentum
            b += tmp
            np.multiply(b, lr, out=tmp)
        w -= tmp
    return True


def row_max(x: Array) -> Array:
    """``max(x, axis=-1, keepdims=True)``; on NumPy the ufunc's own reduce (1.2 us against
    np.max's 3.7 us on a 32x10 batch of logits: per-call cost decides small models)."""
    if type(x) is np.ndarray:
        return np.maximum.reduce(x, axis=-1, keepdims=True)
    return namespace(x).max(x, axis=-1, keepdims=True)


def row_sum(x: Array) -> Array:
    """``sum(x, axis=-1, keepdims=True)``; on NumPy the ufunc's own reduce (the same sum)."""
    if type(x) is np.ndarray:
        return np.add.reduce(x, axis=-1, keepdims=True)
    return namespace(x).sum(x, axis=-1, keepdims=True)


def fused_rms(
    value: Array, grad: Array, acc: Array, *, lr: float, eps: float, rho: float | None = None
) -> bool:
    """In place: ``acc = acc + g*g`` (AdaGrad, ``rho`` None) or ``acc = rho*acc + (1-rho)*(g*g)``
    (RMSProp); ``value -= lr * (g / (sqrt(acc) + eps))`` (NumPy only), piece by piece."""
    if not _all_writeable_numpy(value, acc) or not array_api_compat.is_numpy_array(grad):
        return False
    scratch = _scratch(value)
    for w, g, a in _pieces(value, grad, acc):
        tmp = scratch[: w.size].reshape(w.shape)
        np.multiply(g, g, out=tmp)
        if rho is not None:
            tmp *= 1.0 - rho
            a *= rho
        a += tmp
        np.sqrt(a, out=tmp)
        tmp += eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        w -= tmp
    return True


def take_at_labels(x: Array, labels: Array) -> Array:
    """``x[i, labels[i]]`` for every row ``i``, shape (rows, 1): NumPy's ``take_along_axis`` is
    Python-level index building (~4 us on a 32x10 batch); integer-array indexing is ~1 us."""
    if array_api_compat.is_numpy_array(x):
        return x[np.arange(labels.shape[0]), labels][:, None]
    return namespace(x).take_along_axis(x, labels[:, None], axis=1)


def add_at_labels(x: Array, labels: Array, value: float) -> Array:
    """``x[i, labels[i]] += value`` for every row ``i``, in place where the backend has
    integer-array indexing (NumPy, CuPy, torch); elsewhere through a boolean mask. The
    softmax-cross-entropy backward uses it to subtract the one-hot without building one."""
    rows = labels.shape[0]
    if array_api_compat.is_numpy_array(x) and x.flags.writeable:
        x[np.arange(rows), labels] += value
        return x
    if array_api_compat.is_cupy_array(x):
        x[sys.modules["cupy"].arange(rows), labels] += value
        return x
    if array_api_compat.is_torch_array(x):
        x[sys.modules["torch"].arange(rows, device=x.device), labels] += value
        return x
    xp = namespace(x)
    mask = labels[:, None] == xp.arange(x.shape[1], device=device_of(x))
    return xp.where(mask, x + value, x)


def affine(x: Array, w: Array, b: Array) -> Array:
    """``x @ w + b``; on NumPy the bias is added in place into the fresh product (one
    temporary fewer per Dense layer per step; the same additions, so the same bits)."""
    out = x @ w
    if type(out) is np.ndarray:
        out += b
        return out
    return out + b


def matmul(a: Array, b: Array, out: Array = None) -> Array:
    """``a @ b`` (2-D), written into ``out`` where one is given and fits (NumPy arrays of one
    dtype): a layer writes a weight gradient straight into the flat gradient buffer. The
    same GEMM, the same bits."""
    if (
        type(out) is np.ndarray
        and type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.dtype == b.dtype == out.dtype
        and out.shape == (a.shape[0], b.shape[1])
    ):
        return np.matmul(a, b, out=out)
    return a @ b


def sum_rows(x: Array, out: Array = None) -> Array:
    """``sum(x, axis=0)``, written into ``out`` where one is given and fits. On NumPy the
    ufunc's own reduce: the same sum as ``np.sum`` without its Python wrapper (1 of 2 us)."""
    if type(x) is not np.ndarray:
        return namespace(x).sum(x, axis=0)
    fits = type(out) is np.ndarray and out.dtype == x.dtype and out.shape == x.shape[1:]
    return np.add.reduce(x, axis=0, out=out if fits else None)

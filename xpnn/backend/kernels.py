"""Fast paths of :mod:`xpnn.backend`: flat-buffer helpers and in-place NumPy kernels.

Each function here computes exactly what the plain Array API expression beside its caller
computes (same floating-point operations in the same order, tested bit for bit), but in
place or with integer-array indexing where the backend allows it: on NumPy, temporaries
and Python-level index building cost more than the arithmetic on small and medium arrays.
Each falls back to the standard form (or returns False) elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backend import assign, device_of, namespace

Array = Any


def supports_views(x: Array) -> bool:
    """Whether slices of ``x`` are writeable views (NumPy, CuPy, torch): flat buffers need that."""
    if array_api_compat.is_numpy_array(x):
        return bool(x.flags.writeable)
    return array_api_compat.is_cupy_array(x) or array_api_compat.is_torch_array(x)


def flatten_into(arrays: Sequence[Array], out: Array) -> Array:
    """Concatenate the flattened ``arrays`` into the existing 1-D ``out`` (no new allocation)."""
    if array_api_compat.is_torch_array(out):
        import torch

        flat = [a.reshape(-1) for a in arrays]
        try:
            return torch.cat(flat, out=out)
        except RuntimeError:  # an input aliases ``out`` (re-packing swapped parameters)
            return out.copy_(torch.cat(flat))
    if array_api_compat.is_numpy_array(out):
        return np.concatenate([a.reshape(-1) for a in arrays], out=out)
    if array_api_compat.is_cupy_array(out):
        return sys.modules["cupy"].concatenate([a.reshape(-1) for a in arrays], out=out)
    xp = namespace(out)
    return assign(out, xp.concat([xp.reshape(a, (-1,)) for a in arrays]))


# -- optional fused fast paths (Chainer's update_core_cpu beside the plain equations) ----------
# Each computes exactly the plain Array API expressions of its optimizer, in the same order of
# floating-point operations, but in place with one temporary instead of one per operation:
# on NumPy the plain path's temporaries (and the final copy) cost more than the arithmetic.
# Each returns False where it does not apply; tests assert bit-identical results.


def _all_writeable_numpy(*arrays: Array) -> bool:
    return all(array_api_compat.is_numpy_array(a) and a.flags.writeable for a in arrays)


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
    v = b2*v + (1-b2)*g*g; value -= m * (step_size / (sqrt(v) / bias2_root + eps))`` (NumPy only).

    ``m`` multiplies last: for weights whose gradient is mostly zero, ``m`` decays into
    float32's subnormal range, where each multiply or divide by it takes x86's slow path;
    this order touches it twice per step instead of three times (the optimizer step of the
    Fashion-MNIST MLP after three epochs: 1.63 -> 1.32 ms)."""
    if not _all_writeable_numpy(value, m, v) or not array_api_compat.is_numpy_array(grad):
        return False
    beta1, beta2 = betas
    if shrink != 1.0:
        value *= shrink
    tmp = np.multiply(grad, 1.0 - beta1, out=np.empty_like(value))
    m *= beta1
    m += tmp
    np.multiply(grad, grad, out=tmp)
    tmp *= 1.0 - beta2
    v *= beta2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp /= bias2_root
    tmp += eps
    np.divide(step_size, tmp, out=tmp)
    tmp *= m
    value -= tmp
    return True


def fused_sgd(
    value: Array, grad: Array, lr: float, buf: Array = None, *, momentum: float = 0.0, dampening: float = 0.0
) -> bool:
    """In place: ``value -= lr * grad``; with ``buf`` (torch-style momentum after the first
    step): ``buf = momentum * buf + (1 - dampening) * grad; value -= lr * buf`` (NumPy only)."""
    if not _all_writeable_numpy(value) or not array_api_compat.is_numpy_array(grad):
        return False
    if buf is None:
        value -= np.multiply(grad, lr, out=np.empty_like(value))
        return True
    if not _all_writeable_numpy(buf):
        return False
    tmp = np.multiply(grad, 1.0 - dampening, out=np.empty_like(value))
    buf *= momentum
    buf += tmp
    np.multiply(buf, lr, out=tmp)
    value -= tmp
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

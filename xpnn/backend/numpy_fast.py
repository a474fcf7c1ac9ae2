"""Optional fast paths: in-place NumPy kernels beside the plain Array API equations.

Each function here computes exactly what the plain Array API expression in its caller
computes (same floating-point operations in the same order, tested bit for bit), but in
place or with integer-array indexing where the backend allows it: on NumPy, temporaries
and Python-level index building cost more than the arithmetic on small and medium arrays.
The callers own the switch (``optimizer.fused``, ``Dense.fused``, ...): they try a function
here only while it is on, and write the plain expression themselves. Where a fast path does
not apply (another backend, a read-only array, a variant it does not cover) the optimizer
kernels return False and the layer operations None, and the caller runs the plain code.

Where numba is installed (the ``fast`` extra), the three optimizer kernels hand the
contiguous arrays to :mod:`xpnn.backend.numba_fast`'s one-pass loops (the same bits), and
run their own passes only where those do not apply or ``numba_fast.enabled`` is False.

The optimizer kernels are registered once, in :data:`OPTIMIZER_KERNELS`, under the name an
optimizer class gives in its ``kernel`` attribute; each has the signature of
``Optimizer.update`` but updates ``value`` and ``state`` in place and returns whether it did.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backend import numba_fast

Array = Any
Group = dict[str, Any]  # a parameter's state, or its group's hyperparameters
Kernel = Callable[[Array, Array, Group, Group, float], bool]


# -- optional fused fast paths (Chainer's update_core_cpu beside the plain equations) ----------
# Each computes exactly the plain Array API expressions of its optimizer, in the same order of
# floating-point operations, but in place with one temporary instead of one per operation:
# on NumPy the plain path's temporaries (and the final copy) cost more than the arithmetic.
# Each returns False where it does not apply; tests assert bit-identical results.


_PIECE = 65536  # elements per pass: five float32 pieces (value, grad, two moments, temporary) fit in L2


def _all_writeable_numpy(*arrays: Array) -> bool:
    for a in arrays:  # a plain loop: this runs at every optimizer step
        if not (type(a) is np.ndarray or array_api_compat.is_numpy_array(a)) or not a.flags.writeable:
            return False
    return True


def _is_numpy(a: Array) -> bool:
    return type(a) is np.ndarray or array_api_compat.is_numpy_array(a)


def _applies(value: Array, grad: Array, *state: Array) -> bool:
    """The kernels run on writeable NumPy arrays of one shape (state of a parameter whose value
    was swapped for another shape is left to the optimizer's check, untouched)."""
    if type(grad) is not np.ndarray or type(value) is not np.ndarray or not value.flags.writeable:
        return False
    if grad.shape != value.shape:
        return False
    for a in state:  # plain loops: this runs at every optimizer step
        if type(a) is not np.ndarray or not a.flags.writeable or a.shape != value.shape:
            return False
    return True


def _coupled_decay(value: Array, grad: Array, group: Group) -> Array:
    """``grad + weight_decay * value``, the L2 penalty's gradient (the plain equations' first line)."""
    return grad + group["weight_decay"] * value if group["weight_decay"] else grad


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
    if not _all_writeable_numpy(value, m, v) or not _is_numpy(grad):
        return False
    if numba_fast.adam(value, grad, m, v, betas=betas, step_size=step_size, bias2_root=bias2_root,
                       eps=eps, shrink=shrink):  # fmt: skip
        return True  # the same numbers in one pass
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
    if not _all_writeable_numpy(value) or not _is_numpy(grad):
        return False
    if buf is not None and not _all_writeable_numpy(buf):
        return False
    if numba_fast.sgd(value, grad, lr, buf, momentum=momentum, dampening=dampening):
        return True  # the same numbers in one pass
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


def fused_rms(
    value: Array, grad: Array, acc: Array, *, lr: float, eps: float, rho: float | None = None
) -> bool:
    """In place: ``acc = acc + g*g`` (AdaGrad, ``rho`` None) or ``acc = rho*acc + (1-rho)*(g*g)``
    (RMSProp); ``value -= lr * (g / (sqrt(acc) + eps))`` (NumPy only), piece by piece."""
    if not _all_writeable_numpy(value, acc) or not _is_numpy(grad):
        return False
    if numba_fast.rms(value, grad, acc, lr=lr, eps=eps, rho=rho):
        return True  # the same numbers in one pass
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


# -- the registered optimizer kernels: Optimizer.update's signature, False where they do not apply --
def sgd_kernel(value: Array, grad: Array, state: Group, group: Group, lr: float) -> bool:
    """SGD without momentum, and torch-style momentum after the first step (not Nesterov)."""
    momentum = group["momentum"]
    if momentum and (group["momentum_style"] != "torch" or group["nesterov"] or state["step"] == 1):
        return False
    buf = state["momentum_buffer"] if momentum else None
    if not _applies(value, grad, *([] if buf is None else [buf])):
        return False
    grad = _coupled_decay(value, grad, group)
    return fused_sgd(value, grad, lr, buf, momentum=momentum, dampening=group["dampening"])


def adagrad_kernel(value: Array, grad: Array, state: Group, group: Group, lr: float) -> bool:
    """AdaGrad (every variant)."""
    if not _applies(value, grad, state["sum"]):
        return False
    grad = _coupled_decay(value, grad, group)
    return fused_rms(value, grad, state["sum"], lr=lr, eps=group["eps"])


def rmsprop_kernel(value: Array, grad: Array, state: Group, group: Group, lr: float) -> bool:
    """Plain RMSProp (neither centered nor with momentum)."""
    if group["centered"] or group["momentum"] or not _applies(value, grad, state["square_avg"]):
        return False
    grad = _coupled_decay(value, grad, group)
    return fused_rms(value, grad, state["square_avg"], lr=lr, eps=group["eps"], rho=group["rho"])


def _adam(value: Array, grad: Array, state: Group, group: Group, lr: float, decoupled: bool) -> bool:
    """Adam / AdamW without AMSGrad, with the bias corrections folded into two scalars as in
    ``Adam.update``."""
    m, v = state["exp_avg"], state["exp_avg_sq"]
    if group["amsgrad"] or not _applies(value, grad, m, v):
        return False
    (beta1, beta2), weight_decay, step = group["betas"], group["weight_decay"], state["step"]
    shrink = 1.0 - lr * weight_decay if weight_decay and decoupled else 1.0
    grad = grad if decoupled else _coupled_decay(value, grad, group)
    step_size, bias2_root = lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step)
    scalars = dict(betas=(beta1, beta2), step_size=step_size, bias2_root=bias2_root, eps=group["eps"])
    return fused_adam(value, grad, m, v, shrink=shrink, **scalars)


OPTIMIZER_KERNELS: dict[str, Kernel] = {
    "sgd": sgd_kernel,
    "adagrad": adagrad_kernel,
    "rmsprop": rmsprop_kernel,
    "adam": lambda value, grad, state, group, lr: _adam(value, grad, state, group, lr, decoupled=False),
    "adamw": lambda value, grad, state, group, lr: _adam(value, grad, state, group, lr, decoupled=True),
}


# -- layer operations: the result, or None where the fast form does not apply -------------------
def row_max(x: Array) -> Array | None:
    """``max(x, axis=-1, keepdims=True)`` by the ufunc's own reduce (1.2 us against np.max's
    3.7 us on a 32x10 batch of logits: per-call cost decides small models)."""
    return np.maximum.reduce(x, axis=-1, keepdims=True) if type(x) is np.ndarray else None


def row_sum(x: Array) -> Array | None:
    """``sum(x, axis=-1, keepdims=True)`` by the ufunc's own reduce (the same sum)."""
    return np.add.reduce(x, axis=-1, keepdims=True) if type(x) is np.ndarray else None


def take_at_labels(x: Array, labels: Array) -> Array | None:
    """``x[i, labels[i]]`` for every row ``i``, shape (rows, 1), by integer-array indexing:
    NumPy's ``take_along_axis`` is Python-level index building (~4 us on a 32x10 batch; ~1 us)."""
    if type(x) is np.ndarray:
        return x[np.arange(labels.shape[0]), labels][:, None]
    return None


def add_at_labels(x: Array, labels: Array, value: float) -> Array | None:
    """``x[i, labels[i]] += value`` for every row ``i``, in place by integer-array indexing
    (NumPy, CuPy, torch): the softmax-cross-entropy backward subtracts the one-hot so."""
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
    return None


def affine(x: Array, w: Array, b: Array) -> Array | None:
    """``x @ w + b`` with the bias added in place into the fresh product (one temporary fewer
    per Dense layer per step; the same additions, so the same bits)."""
    if type(x) is not np.ndarray or type(w) is not np.ndarray:
        return None
    out = x @ w
    out += b
    return out


def matmul(a: Array, b: Array, out: Array = None) -> Array | None:
    """``a @ b`` (2-D) written into ``out`` where it fits (NumPy arrays of one dtype): a layer
    writes a weight gradient straight into the flat gradient buffer. The same GEMM, the same bits."""
    if (
        type(out) is np.ndarray
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
    if type(x) is not np.ndarray:
        return None
    fits = type(out) is np.ndarray and out.dtype == x.dtype and out.shape == x.shape[1:]
    return np.add.reduce(x, axis=0, out=out if fits else None)

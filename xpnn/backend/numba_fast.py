"""Optional one-pass optimizer kernels compiled by numba (the ``fast`` extra).

:mod:`xpnn.backend.numpy_fast`'s in-place kernels make ~10 passes over the flat buffers per
step (Adam: multiply, scale, add, square, ..., subtract), each one reading and writing
arrays that a model's GEMMs have just evicted from the cache. The loops here make ONE pass:
each element of value, gradient and state is loaded once, updated in registers and stored
(Adam over a 235,146-parameter MLP: 349 -> 69 us per step; SGD 110 -> 41 us).

They compute the same numbers to the last bit: the same floating-point operations in the same
order, every scalar cast to the array's dtype first (as NumPy does with a Python float),
no fused multiply-add or reassociation (``fastmath=False``), and ``error_model="numpy"`` so a
division by zero gives inf as NumPy's does (and the loop vectorises). Tests compare them bit
for bit with the NumPy kernels and the plain equations.

numba is optional and imported only at the first call: ``import xpnn`` stays fast, and where
numba is absent (or :data:`enabled` is False) every function here returns False and the
caller runs its NumPy in-place kernel. ``cache=True`` keeps the compiled machine code next to
this file, so only the first run on a machine pays the compile (a few seconds).
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any

enabled = True  # False: never use numba (tests flip it to exercise the NumPy kernels)
_compiled: dict[str, Any] | None = None  # name -> jitted kernel, built at the first call
_installed: bool | None = None  # whether numba can be imported, looked up once


def available() -> bool:
    """True where numba imports (tried once, at the first call) and :data:`enabled` is on."""
    global _installed
    if not enabled:
        return False
    if _installed is None:
        try:
            import numba  # noqa: F401  # optional: a missing or broken install means the NumPy kernels
        except Exception:  # e.g. ImportError: "Numba needs NumPy 2.3 or less"
            _installed = False
        else:
            _installed = True
    return _installed


# -- the loops (plain Python here; compiled at first use). Each mirrors its NumPy kernel's order --
def _adam_loop(w: Array, g: Array, m: Array, v: Array, shrink: Any, b1: Any, c1: Any, b2: Any, c2: Any,
               eps_b: Any, num: Any, decay: bool) -> None:  # fmt: skip
    # fused_adam: w *= shrink; m = m*b1 + g*c1; v = v*b2 + (g*g)*c2; w -= (num / (sqrt(v) + eps_b)) * m
    for i in range(w.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        m[i] = mi
        v[i] = vi
        wi = w[i] * shrink if decay else w[i]
        w[i] = wi - (num / (np.sqrt(vi) + eps_b)) * mi


def _sgd_loop(w: Array, g: Array, lr: Any) -> None:
    for i in range(w.shape[0]):  # fused_sgd without momentum: w -= g * lr
        w[i] = w[i] - g[i] * lr


def _momentum_loop(w: Array, g: Array, buf: Array, lr: Any, momentum: Any, keep: Any) -> None:
    for i in range(w.shape[0]):  # fused_sgd with buf: buf = buf*momentum + g*(1-dampening); w -= buf*lr
        bi = buf[i] * momentum + g[i] * keep
        buf[i] = bi
        w[i] = w[i] - bi * lr


def _rms_loop(w: Array, g: Array, acc: Array, lr: Any, eps: Any, rho: Any, keep: Any, decay: bool) -> None:
    # fused_rms: acc = acc*rho + (g*g)*(1-rho) (AdaGrad: acc + g*g); w -= (g / (sqrt(acc) + eps)) * lr
    for i in range(w.shape[0]):
        gi = g[i]
        ai = acc[i] * rho + (gi * gi) * keep if decay else acc[i] + gi * gi
        acc[i] = ai
        w[i] = w[i] - (gi / (np.sqrt(ai) + eps)) * lr


def _relu_grad_loop(x: Array, dout: Array, out: Array) -> None:
    one, zero = out.dtype.type(1), out.dtype.type(0)
    for i in range(out.shape[0]):  # ReLU.backward: astype(x > 0) * dout, the 0/1 mask never stored
        out[i] = (one if x[i] > 0 else zero) * dout[i]


def _gather_scaled_loop(x: Array, index: Array, scale: Any, out: Array) -> None:
    for r in range(index.shape[0]):  # DataLoader: astype(take(x, index, axis=0), dtype) * scale
        row = x[index[r]]
        for c in range(row.shape[0]):
            out[r, c] = out.dtype.type(row[c]) * scale


# numba's options for every loop: numpy's division semantics, no reassociation, GIL released
OPTIONS: dict[str, Any] = dict(error_model="numpy", fastmath=False, nogil=True)


def jit(loop: Any, **overrides: Any) -> Any:
    """``loop`` compiled lazily (at its first call) with the options every kernel here needs
    (``overrides`` replace some, e.g. ``fastmath`` for a kernel whose sums may be reordered)."""
    import numba  # optional: only reached where available() imported it

    options = {**OPTIONS, **overrides}
    try:
        return numba.njit(cache=True, **options)(loop)
    except RuntimeError:  # no writeable cache directory: compile at every start instead
        return numba.njit(**options)(loop)


def _kernels() -> dict[str, Any]:
    global _compiled
    if _compiled is None:
        loops = {
            "adam": _adam_loop,
            "sgd": _sgd_loop,
            "momentum": _momentum_loop,
            "rms": _rms_loop,
            "gather_scaled": _gather_scaled_loop,
            "relu_grad": _relu_grad_loop,
        }
        _compiled = {name: jit(loop) for name, loop in loops.items()}
    return _compiled


def _flat(*arrays: Array) -> list[Array] | None:
    """The arrays as 1-D views of one length (float32 or float64 NumPy arrays of one dtype, each
    1-D or C-contiguous), or None where a reshape would copy: the NumPy kernel takes those."""
    first = arrays[0]
    if not available() or first.dtype not in (np.float32, np.float64):
        return None
    for a in arrays:  # a plain loop: this runs at every optimizer step
        if a.dtype != first.dtype or a.shape != first.shape:
            return None
    if first.ndim == 1:
        return list(arrays)
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


def adam(value: Array, grad: Array, m: Array, v: Array, *, betas: tuple[float, float], step_size: float,
         bias2_root: float, eps: float, shrink: float = 1.0) -> bool:  # fmt: skip
    """:func:`~xpnn.backend.numpy_fast.fused_adam` in one pass; False where it does not apply."""
    flat = _flat(value, grad, m, v)
    if flat is None:
        return False
    t = value.dtype.type
    (beta1, beta2), eps_b, num = betas, t(eps * bias2_root), t(step_size * bias2_root)
    scalars = (t(shrink), t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), eps_b, num)
    _kernels()["adam"](*flat, *scalars, shrink != 1.0)
    return True


def sgd(value: Array, grad: Array, lr: float, buf: Array = None, *, momentum: float = 0.0,
        dampening: float = 0.0) -> bool:  # fmt: skip
    """:func:`~xpnn.backend.numpy_fast.fused_sgd` in one pass; False where it does not apply."""
    flat = _flat(value, grad, *([] if buf is None else [buf]))
    if flat is None:
        return False
    t = value.dtype.type
    if buf is None:
        _kernels()["sgd"](*flat, t(lr))
    else:
        _kernels()["momentum"](*flat, t(lr), t(momentum), t(1.0 - dampening))
    return True


def rms(value: Array, grad: Array, acc: Array, *, lr: float, eps: float, rho: float | None = None) -> bool:
    """:func:`~xpnn.backend.numpy_fast.fused_rms` in one pass; False where it does not apply."""
    flat = _flat(value, grad, acc)
    if flat is None:
        return False
    t = value.dtype.type
    decay = rho is not None
    rate = t(rho) if decay else t(1.0)
    keep = t(1.0 - rho) if rho is not None else t(1.0)
    _kernels()["rms"](*flat, t(lr), t(eps), rate, keep, decay)
    return True


def relu_grad(x: Array, dout: Array) -> Array | None:
    """``astype(x > 0, dout.dtype) * dout`` in one pass into a fresh array (the plain form makes
    a boolean mask, casts it and multiplies: three passes, two temporaries), in ``dout``'s
    memory order; None where numba is absent or the arrays are not NumPy float arrays of one
    dtype, shape and dense layout (C-contiguous, or a transposed view of it such as a fused
    convolution's channel-major output)."""
    if type(x) is not np.ndarray or type(dout) is not np.ndarray or x.dtype != dout.dtype:
        return None
    if x.shape != dout.shape or x.dtype not in (np.float32, np.float64) or not available():
        return None
    if x.flags.c_contiguous and dout.flags.c_contiguous:
        out = np.empty(dout.shape, dtype=dout.dtype)
    elif x.strides == dout.strides:  # one layout: flat views in memory order line up
        out = np.empty_like(dout)  # order "K": that layout
    else:
        return None
    flat = [_memory_order_flat(a) for a in (x, dout, out)]
    if any(f is None for f in flat):
        return None
    _kernels()["relu_grad"](*flat)
    return out


def _memory_order_flat(a: Array) -> Array | None:
    """``a`` as a 1-D view in memory order: C-contiguous, or an axis permutation of such an
    array (its strides sorted); None where the elements are not one dense block."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    moved = a.transpose(sorted(range(a.ndim), key=lambda axis: -a.strides[axis]))
    return moved.reshape(-1) if moved.flags.c_contiguous else None


def gather_scaled(x: Array, index: Array, dtype: Any, scale: float) -> Array | None:
    """``astype(take(x, index, axis=0), dtype) * scale`` for a batch of uint8 images in one pass
    (the plain form gathers, casts and multiplies: three passes, two temporaries): each value
    is cast to ``dtype`` exactly and multiplied by ``scale`` cast to ``dtype``, as NumPy does.
    None where numba is absent or the arrays are not a C-contiguous uint8 NumPy array and
    int64 indices (the caller then runs the plain form)."""
    if not available() or type(x) is not np.ndarray or type(index) is not np.ndarray:
        return None
    if x.dtype != np.uint8 or index.dtype != np.int64 or index.ndim != 1 or not x.flags.c_contiguous:
        return None
    if np.dtype(dtype) not in (np.float32, np.float64) or x.ndim < 1 or x.size == 0:
        return None
    if index.shape[0] and not (-x.shape[0] <= index.min() and index.max() < x.shape[0]):
        return None  # out of range: NumPy's take raises its own error
    out = np.empty((index.shape[0], *x.shape[1:]), dtype=dtype)
    rows = x.reshape(x.shape[0], -1)
    _kernels()["gather_scaled"](rows, index, out.dtype.type(scale), out.reshape(index.shape[0], -1))
    return out

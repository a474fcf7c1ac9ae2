"""The optimizers' update equations as NumPy in-place passes and numba loops (fast paths).

Each optimizer class in :mod:`xpnn.optim.optimizers` writes its plain equation (``update``) and
names its fast form here directly (``update_fast``), handing over the scalars it computed once
(learning rate, bias corrections, decay factor). The forms here compute exactly those
equations, in the same order of floating-point operations, tested bit for bit:

* a numba loop (:mod:`xpnn.kernels.compile`), ONE pass: each element of value, gradient and
  state loaded once, updated in registers and stored (Adam over a 235,146-parameter MLP:
  349 -> 69 us per step; SGD 110 -> 41 us): the GEMMs of a step have just evicted them; over
  large buffers on several threads (:mod:`xpnn.kernels.threads`), each a range of elements;
* else the NumPy in-place form, piece by piece with one temporary instead of one per
  operation (the plain path's temporaries and final copy cost more than the arithmetic).

Each returns False where it does not apply (another backend, a read-only or mismatched array)
and changes nothing then: the class runs its plain ``update``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from xpnn.kernels import compile, threads

Array = Any
_u = np.uint64  # unsigned loop bounds: numba then skips the negative-index wraparound, which
# blocks vectorisation (an Adam step 7x slower with signed part bounds)
_compiled: dict[str, Any] | None = None  # name -> jitted loop, built at the first call


def adam(value: Array, grad: Array, m: Array, v: Array, *, betas: tuple[float, float], step_size: float,
         bias2_root: float, eps: float, shrink: float = 1.0) -> bool:  # fmt: skip
    """In place: ``value *= shrink`` (AdamW's decoupled decay); ``m = b1*m + (1-b1)*g``;
    ``v = b2*v + (1-b2)*g*g``;
    ``value -= m * ((step_size * bias2_root) / (sqrt(v) + eps * bias2_root))``."""
    if not applies(value, grad, m, v):
        return False
    scalars: dict[str, Any] = dict(
        betas=betas, step_size=step_size, bias2_root=bias2_root, eps=eps, shrink=shrink
    )
    return _adam_numba(value, grad, m, v, **scalars) or _adam_numpy(value, grad, m, v, **scalars)


def sgd(value: Array, grad: Array, lr: float, buf: Array = None, *, momentum: float = 0.0,
        dampening: float = 0.0) -> bool:  # fmt: skip
    """In place: ``value -= lr * grad``; with ``buf`` (torch-style momentum after the first
    step): ``buf = momentum * buf + (1 - dampening) * grad; value -= lr * buf``."""
    if not applies(value, grad, *([] if buf is None else [buf])):
        return False
    keywords: dict[str, Any] = dict(momentum=momentum, dampening=dampening)
    return _sgd_numba(value, grad, lr, buf, **keywords) or _sgd_numpy(value, grad, lr, buf, **keywords)


def rms(value: Array, grad: Array, acc: Array, *, lr: float, eps: float, rho: float | None = None) -> bool:
    """In place: ``acc = acc + g*g`` (AdaGrad, ``rho`` None) or ``acc = rho*acc + (1-rho)*(g*g)``
    (RMSProp); ``value -= lr * (g / (sqrt(acc) + eps))``."""
    if not applies(value, grad, acc):
        return False
    keywords: dict[str, Any] = dict(lr=lr, eps=eps, rho=rho)
    return _rms_numba(value, grad, acc, **keywords) or _rms_numpy(value, grad, acc, **keywords)


# -- the NumPy in-place forms -------------------------------------------------------------------
_PIECE = 65536  # elements per pass: five float32 pieces (value, grad, two moments, temporary) fit in L2


def _all_writeable_numpy(*arrays: Array) -> bool:
    for a in arrays:  # a plain loop: this runs at every optimizer step
        if not (type(a) is np.ndarray or array_api_compat.is_numpy_array(a)) or not a.flags.writeable:
            return False
    return True


def _is_numpy(a: Array) -> bool:
    return type(a) is np.ndarray or array_api_compat.is_numpy_array(a)


def applies(value: Array, grad: Array, *state: Array) -> bool:
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


def _adam_numpy(
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


def _sgd_numpy(
    value: Array, grad: Array, lr: float, buf: Array = None, *, momentum: float = 0.0, dampening: float = 0.0
) -> bool:
    """In place: ``value -= lr * grad``; with ``buf`` (torch-style momentum after the first
    step): ``buf = momentum * buf + (1 - dampening) * grad; value -= lr * buf`` (NumPy only),
    piece by piece (plain SGD over 408,210 parameters: 239 -> 121 us)."""
    if not _all_writeable_numpy(value) or not _is_numpy(grad):
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


def _rms_numpy(
    value: Array, grad: Array, acc: Array, *, lr: float, eps: float, rho: float | None = None
) -> bool:
    """In place: ``acc = acc + g*g`` (AdaGrad, ``rho`` None) or ``acc = rho*acc + (1-rho)*(g*g)``
    (RMSProp); ``value -= lr * (g / (sqrt(acc) + eps))`` (NumPy only), piece by piece."""
    if not _all_writeable_numpy(value, acc) or not _is_numpy(grad):
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


# -- the numba loops (plain Python here; compiled at first use), each in its NumPy form's order,
# -- each element on its own: ``parts`` ranges of them, one per thread, give the same bits
def _adam_loop(w: Array, g: Array, m: Array, v: Array, shrink: Any, b1: Any, c1: Any, b2: Any, c2: Any,
               eps_b: Any, num: Any, decay: bool, begin: int, end: int, parts: int) -> None:  # fmt: skip
    # fused_adam: w *= shrink; m = m*b1 + g*c1; v = v*b2 + (g*g)*c2; w -= (num / (sqrt(v) + eps_b)) * m
    n = w.shape[0]
    for part in range(begin, end):
        for i in range(_u(part * n // parts), _u((part + 1) * n // parts)):
            gi = g[i]
            mi = m[i] * b1 + gi * c1
            vi = v[i] * b2 + (gi * gi) * c2
            m[i] = mi
            v[i] = vi
            wi = w[i] * shrink if decay else w[i]
            w[i] = wi - (num / (np.sqrt(vi) + eps_b)) * mi


def _sgd_loop(w: Array, g: Array, lr: Any, begin: int, end: int, parts: int) -> None:
    n = w.shape[0]
    for part in range(begin, end):  # fused_sgd without momentum: w -= g * lr
        for i in range(_u(part * n // parts), _u((part + 1) * n // parts)):
            w[i] = w[i] - g[i] * lr


def _momentum_loop(
    w: Array, g: Array, buf: Array, lr: Any, momentum: Any, keep: Any, begin: int, end: int, parts: int
) -> None:
    n = w.shape[0]
    for part in range(begin, end):  # fused_sgd with buf: buf = buf*momentum + g*(1-dampening); w -= buf*lr
        for i in range(_u(part * n // parts), _u((part + 1) * n // parts)):
            bi = buf[i] * momentum + g[i] * keep
            buf[i] = bi
            w[i] = w[i] - bi * lr


def _rms_loop(w: Array, g: Array, acc: Array, lr: Any, eps: Any, rho: Any, keep: Any, decay: bool,
              begin: int, end: int, parts: int) -> None:  # fmt: skip
    # fused_rms: acc = acc*rho + (g*g)*(1-rho) (AdaGrad: acc + g*g); w -= (g / (sqrt(acc) + eps)) * lr
    n = w.shape[0]
    for part in range(begin, end):
        for i in range(_u(part * n // parts), _u((part + 1) * n // parts)):
            gi = g[i]
            ai = acc[i] * rho + (gi * gi) * keep if decay else acc[i] + gi * gi
            acc[i] = ai
            w[i] = w[i] - (gi / (np.sqrt(ai) + eps)) * lr


def _flat(*arrays: Array) -> list[Array] | None:
    """The arrays as 1-D views of one length (float32 or float64 NumPy arrays of one dtype, each
    1-D or C-contiguous), or None where a reshape would copy: the NumPy kernel takes those."""
    first = arrays[0]
    if not compile.available() or first.dtype not in (np.float32, np.float64):
        return None
    for a in arrays:  # a plain loop: this runs at every optimizer step
        if a.dtype != first.dtype or a.shape != first.shape:
            return None
    if first.ndim == 1:
        return list(arrays)
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


def _loops() -> dict[str, Any]:
    global _compiled
    if _compiled is None:
        loops = {"adam": _adam_loop, "sgd": _sgd_loop, "momentum": _momentum_loop, "rms": _rms_loop}
        _compiled = {name: compile.threaded(loop) for name, loop in loops.items()}
    return _compiled


def _adam_numba(value: Array, grad: Array, m: Array, v: Array, *, betas: tuple[float, float],
                step_size: float, bias2_root: float, eps: float, shrink: float = 1.0) -> bool:  # fmt: skip
    """:func:`_adam_numpy` in one pass; False where it does not apply."""
    flat = _flat(value, grad, m, v)
    if flat is None:
        return False
    t = value.dtype.type
    (beta1, beta2), eps_b, num = betas, t(eps * bias2_root), t(step_size * bias2_root)
    scalars = (t(shrink), t(beta1), t(1.0 - beta1), t(beta2), t(1.0 - beta2), eps_b, num)
    _loops()["adam"](threads.parts_for(value.size), *flat, *scalars, shrink != 1.0)
    return True


def _sgd_numba(value: Array, grad: Array, lr: float, buf: Array = None, *, momentum: float = 0.0,
               dampening: float = 0.0) -> bool:  # fmt: skip
    """:func:`_sgd_numpy` in one pass; False where it does not apply."""
    flat = _flat(value, grad, *([] if buf is None else [buf]))
    if flat is None:
        return False
    t = value.dtype.type
    parts = threads.parts_for(value.size)
    if buf is None:
        _loops()["sgd"](parts, *flat, t(lr))
    else:
        _loops()["momentum"](parts, *flat, t(lr), t(momentum), t(1.0 - dampening))
    return True


def _rms_numba(
    value: Array, grad: Array, acc: Array, *, lr: float, eps: float, rho: float | None = None
) -> bool:
    """:func:`_rms_numpy` in one pass; False where it does not apply."""
    flat = _flat(value, grad, acc)
    if flat is None:
        return False
    t = value.dtype.type
    decay = rho is not None
    rate = t(rho) if decay else t(1.0)
    keep = t(1.0 - rho) if rho is not None else t(1.0)
    _loops()["rms"](threads.parts_for(value.size), *flat, t(lr), t(eps), rate, keep, decay)
    return True

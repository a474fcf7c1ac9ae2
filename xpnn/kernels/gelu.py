"""Optional fast paths of GELU (:mod:`xpnn.functional.gelu`): loops compiled by numba around
NumPy's own SIMD ``tanh`` and ``exp`` (numba calls the scalar libm functions, several times
slower). As plain NumPy calls GELU-tanh is nine passes forward and twelve back over a
transformer's (batch * time, 4 * dim) activations; here it is three and one.

- GELU-tanh: the polynomial ``u = sqrt(2/pi) (x + 0.044715 x**3)``, NumPy's ``tanh``, then
  ``0.5 x (1 + t)``; backward in one pass. The same operations in the same order as the plain
  equations, scalars cast to the array's dtype first (as NumPy casts a Python float), no fused
  multiply-add: the same bits.
- Exact GELU: NumPy's ``exp(-x**2 / 2)``, then Cody's erf in one pass with all three of its
  rationals computed and one chosen (so the loop vectorises); backward in one pass from the
  kept ``exp``. A few ulps from the plain path, whose erf splits the square before its ``exp``.

Every element is computed on its own, so large arrays split into ranges over several threads
(:mod:`xpnn.kernels.threads`) with the same bits. Every function returns None where it does
not apply (numba absent or the fast paths off, not C-contiguous NumPy float arrays of one
dtype) and then changes nothing: the caller runs its plain code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xpnn.kernels import compile, threads
from xpnn.kernels.transformer import dense_floats as _dense

Array = Any
_u = np.uint64  # unsigned loop bounds: numba then skips the negative-index wraparound, which
# blocks vectorisation (an Adam step 7x slower with signed part bounds)

_compiled: dict[str, Any] | None = None
_COEFFICIENTS: dict[tuple[int, Any], list[Array]] = {}  # (id of a coefficient tuple, dtype) -> arrays
_C = math.sqrt(2.0 / math.pi)
_KAPPA = 0.044715


# -- the loops (plain Python here; compiled at first use), each element on its own ---------------
def _gelu_inner_loop(x: Array, out: Array, c: Any, kappa: Any, begin: int, end: int, parts: int) -> None:
    items = x.shape[0]
    for part in range(begin, end):  # SQRT_2_OVER_PI * (x + KAPPA * (x * x * x))
        for i in range(_u(part * items // parts), _u((part + 1) * items // parts)):
            xi = x[i]
            out[i] = c * (xi + kappa * (xi * xi * xi))


def _gelu_out_loop(
    x: Array, t: Array, out: Array, half: Any, one: Any, begin: int, end: int, parts: int
) -> None:
    items = x.shape[0]
    for part in range(begin, end):  # 0.5 * x * (1.0 + t)
        for i in range(_u(part * items // parts), _u((part + 1) * items // parts)):
            out[i] = half * x[i] * (one + t[i])


def _gelu_grad_loop(
    x: Array,
    t: Array,
    g: Array,
    out: Array,
    c: Any,
    k3: Any,
    half: Any,
    one: Any,
    begin: int,
    end: int,
    parts: int,
) -> None:
    items = x.shape[0]
    for part in range(begin, end):  # g * (0.5 (1 + t) + (0.5 x) (1 - t t) SQRT_2_OVER_PI (1 + 3 KAPPA x x))
        for i in range(_u(part * items // parts), _u((part + 1) * items // parts)):
            xi, ti = x[i], t[i]
            inner = c * (one + k3 * (xi * xi))
            out[i] = g[i] * (half * (one + ti) + (half * xi) * (one - ti * ti) * inner)


def _gelu_erf_loop(x: Array, e: Array, cdf: Array, y: Array, a: Array, b: Array, c: Array, d: Array, p: Array,
                   q: Array, k: Array, begin: int, end: int, parts: int) -> None:  # fmt: skip
    # Cody's erf of z = x / sqrt(2) from its three rationals (each on its argument clamped into
    # its range, all computed and one chosen, so the loop vectorises), exp(-z**2) from NumPy (e)
    sqrt_half, near, middle, far, sqrt_pi_inv = k[0], k[1], k[2], k[3], k[4]
    a4, c8, p5, half, one = k[5], k[6], k[7], k[8], k[9]
    items = x.shape[0]
    for part in range(begin, end):
        for i in range(_u(part * items // parts), _u((part + 1) * items // parts)):
            xi = x[i]
            z = xi * sqrt_half
            v = abs(z)
            vn = min(v, near)
            zz = vn * vn
            top, bottom = a4 * zz, zz
            for j in range(3):
                top, bottom = (top + a[j]) * zz, (bottom + b[j]) * zz
            small = vn * (top + a[3]) / (bottom + b[3])
            vm = min(max(v, near), middle)
            top, bottom = c8 * vm, vm
            for j in range(7):
                top, bottom = (top + c[j]) * vm, (bottom + d[j]) * vm
            erfc_middle = e[i] * ((top + c[7]) / (bottom + d[7]))
            vf = min(max(v, middle), far)
            w = one / (vf * vf)
            top, bottom = p5 * w, w
            for j in range(4):
                top, bottom = (top + p[j]) * w, (bottom + q[j]) * w
            erfc_far = e[i] * ((sqrt_pi_inv - w * (top + p[4]) / (bottom + q[4])) / vf)
            erfc = erfc_middle if v <= middle else erfc_far
            magnitude = small if v <= near else (half - erfc) + half
            phi = half * (one + (-magnitude if z < 0 else magnitude))
            cdf[i] = phi
            y[i] = xi * phi


def _gelu_erf_grad_loop(
    x: Array, e: Array, cdf: Array, g: Array, out: Array, scale: Any, begin: int, end: int, parts: int
) -> None:
    items = x.shape[0]
    for part in range(begin, end):  # g * (cdf + x * exp(-x**2 / 2) / sqrt(2 pi))
        for i in range(_u(part * items // parts), _u((part + 1) * items // parts)):
            out[i] = g[i] * (cdf[i] + x[i] * (e[i] * scale))


def _kernels() -> dict[str, Any]:
    global _compiled
    if _compiled is None:
        loops = {
            "gelu_inner": _gelu_inner_loop,
            "gelu_out": _gelu_out_loop,
            "gelu_grad": _gelu_grad_loop,
            "gelu_erf": _gelu_erf_loop,
            "gelu_erf_grad": _gelu_erf_grad_loop,
        }
        _compiled = {name: compile.threaded(loop) for name, loop in loops.items()}
    return _compiled


# -- the entry points: the result, or None where a loop does not apply ---------------------------
def gelu_tanh(x: Array) -> tuple[Array, Array] | None:
    """``(0.5 x (1 + t), t)`` with ``t = tanh(sqrt(2/pi) (x + 0.044715 x**3))``."""
    if not _dense(x):
        return None
    kernels, flat, dt, parts = _kernels(), x.reshape(-1), x.dtype.type, threads.parts_for(x.size)
    t = np.empty_like(x)
    kernels["gelu_inner"](parts, flat, t.reshape(-1), dt(_C), dt(_KAPPA))
    np.tanh(t, out=t)
    y = np.empty_like(x)
    kernels["gelu_out"](parts, flat, t.reshape(-1), y.reshape(-1), dt(0.5), dt(1.0))
    return y, t


def gelu_tanh_backward(x: Array, t: Array, g: Array) -> Array | None:
    """GELU-tanh's ``dx`` from its input, the saved ``t`` and ``g``, into a fresh array."""
    if not _dense(x, t, g) or not x.shape == t.shape == g.shape:
        return None
    dt, out = x.dtype.type, np.empty_like(g)
    flat = [a.reshape(-1) for a in (x, t, g, out)]
    _kernels()["gelu_grad"](threads.parts_for(x.size), *flat, dt(_C), dt(3.0 * _KAPPA), dt(0.5), dt(1.0))
    return out


def gelu_erf(x: Array, coefficients: tuple[Any, ...]) -> tuple[Array, Array, Array] | None:
    """``(x * cdf, cdf, exp(-x**2 / 2))`` with ``cdf = (1 + erf(x / sqrt 2)) / 2`` from Cody's
    ``coefficients`` (:mod:`xpnn.functional.gelu` owns them: ``(A, B, C, D, P, Q, scalars)``):
    one NumPy ``exp`` of ``-x**2 / 2`` (no splitting of the square: a few ulps from the plain
    path, whose ``erf`` splits it) between two vectorised passes."""
    if not _dense(x):
        return None
    dt, flat = x.dtype.type, x.reshape(-1)
    e = np.multiply(flat, flat, dtype=x.dtype)
    e *= dt(-0.5)
    np.exp(e, out=e)
    cdf, y = np.empty_like(flat), np.empty_like(flat)
    key = (id(coefficients), x.dtype)
    arrays = _COEFFICIENTS.get(key)
    if arrays is None:
        arrays = _COEFFICIENTS[key] = [np.asarray(c, dtype=x.dtype) for c in coefficients]
    _kernels()["gelu_erf"](threads.parts_for(x.size), flat, e, cdf, y, *arrays)
    return y.reshape(x.shape), cdf.reshape(x.shape), e.reshape(x.shape)


def gelu_erf_backward(x: Array, cdf: Array, e: Array, g: Array, scale: float) -> Array | None:
    """Exact GELU's ``dx = g * (cdf + x * e * scale)`` (``e = exp(-x**2 / 2)``, ``scale =
    1 / sqrt(2 pi)``) in one pass into a fresh array."""
    if not _dense(x, cdf, e, g) or not x.shape == cdf.shape == e.shape == g.shape:
        return None
    out = np.empty_like(g)
    flat = [a.reshape(-1) for a in (x, e, cdf, g, out)]
    _kernels()["gelu_erf_grad"](threads.parts_for(x.size), *flat, x.dtype.type(scale))
    return out

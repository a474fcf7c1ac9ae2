"""GELU, ``x * Phi(x)``, and the error function it needs (the standard has no ``erf``).

``approximate="none"`` (torch's default): ``y = x * cdf``, ``cdf = (1 + erf(x / sqrt 2)) / 2``,
``dy/dx = cdf + x * exp(-x**2 / 2) / sqrt(2 pi)``. ``approximate="tanh"`` (GPT-2's):
``y = x (1 + t) / 2`` with ``t = tanh(u)``, ``u = sqrt(2/pi) (x + 0.044715 x**3)``,
``dy/dx = (1 + t) / 2 + x (1 - t**2) sqrt(2/pi) (1 + 3 * 0.044715 x**2) / 2`` (torch's order).

:func:`erf` is W. J. Cody's rational Chebyshev approximation ("Rational Chebyshev
approximations for the error function", Math. Comp. 1969; netlib's CALERF), accurate to
float64 rounding, written with the standard's elementwise functions: ``x P(x**2) / Q(x**2)``
for ``|x| <= 0.46875``, else ``1 - erfc(|x|)`` with ``erfc = exp(-x**2) R(|x|)`` (a rational
``R`` for ``|x| <= 4``, an asymptotic one in ``1/x**2`` above), ``exp(-x**2)`` split as
``exp(-s**2) exp(-(x - s)(x + s))`` with ``s = trunc(16 x) / 16`` (no cancellation in ``x**2``).
Every branch is evaluated on inputs clamped into its own range, so none makes an inf or NaN
that ``where`` would drop (or that a recorded gradient would multiply by zero).

Fast path (``fused``, NumPy float arrays, numba installed): the tanh form's polynomial and
its backward in one pass each around NumPy's own ``tanh`` (the same bits as the plain
equations); the exact form's erf in one vectorised pass after one NumPy ``exp(-x**2 / 2)``
(kept for the backward's one pass), a few ulps from the plain path, which splits the square
(:mod:`xpnn.kernels.gelu`; 22 -> 0.5 ms on (768, 512) float32).
"""

from __future__ import annotations

import math
from typing import Any

from xpnn.autograd.function import Function
from xpnn.autograd.graph import Node
from xpnn.backend import namespace
from xpnn.kernels import gelu as gelu_kernels

Array = Any

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
KAPPA = 0.044715
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
APPROXIMATIONS = ("none", "tanh")

# Cody's coefficients: erf near 0 (A/B), erfc on (0.46875, 4] (C/D) and above 4 (P/Q)
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03)
_A4 = 1.85777706184603153e-1
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03)  # fmt: skip
_C8 = 2.15311535474403846e-8
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
      6.58749161529837803e-4)  # fmt: skip
_P5 = 1.63153871373020978e-2
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
      2.33520497626869185e-3)  # fmt: skip
_SQRT_PI_INV = 0.56418958354775628695  # 1 / sqrt(pi)
_NEAR, _MIDDLE, _FAR = 0.46875, 4.0, 27.0  # erfc(27) is below float64's smallest subnormal
# the same numbers for the fast path's loop (gelu_kernels.gelu_erf): the arrays, then scalars
CODY = (_A, _B, _C, _D, _P, _Q, (SQRT_HALF, _NEAR, _MIDDLE, _FAR, _SQRT_PI_INV, _A4, _C8, _P5, 0.5, 1.0))


def _ratio(z: Array, lead: float, num: tuple[float, ...], den: tuple[float, ...]) -> tuple[Array, Array]:
    """Cody's numerator ``((lead z + n0) z + n1) z ... + n_last`` and denominator
    ``((z + d0) z + d1) z ... + d_last``."""
    top, bottom = lead * z, z
    for n, d in zip(num[:-1], den[:-1], strict=True):
        top, bottom = (top + n) * z, (bottom + d) * z
    return top + num[-1], bottom + den[-1]


def _exp_minus_square(y: Array) -> Array:
    """``exp(-y**2)`` as ``exp(-s**2) exp(-(y - s)(y + s))``, ``s = trunc(16 y) / 16``."""
    xp = namespace(y)
    s = xp.trunc(y * 16.0) * (1.0 / 16.0)
    # y's factor first: on Tensors, s (from trunc) is a plain array, and a strict array refuses
    # a Tensor on its right instead of handing the product over (the same product either way)
    return xp.exp(-((y - s) * (y + s))) * xp.exp(-(s * s))


def erf(x: Array) -> Array:
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t**2) dt``, elementwise, in ``x``'s
    dtype (Cody's approximation, see the module docstring). Plain Array API code: on Tensors
    it records (and differentiates) like any other."""
    xp = namespace(x)
    y = xp.abs(x)
    near = xp.minimum(y, _NEAR)
    z = near * near
    top, bottom = _ratio(z, _A4, _A, _B)
    small = near * top / bottom  # erf(|x|) for |x| <= 0.46875
    middle = xp.minimum(xp.maximum(y, _NEAR), _MIDDLE)
    top, bottom = _ratio(middle, _C8, _C, _D)
    erfc_middle = _exp_minus_square(middle) * (top / bottom)
    far = xp.minimum(xp.maximum(y, _MIDDLE), _FAR)
    w = 1.0 / (far * far)
    top, bottom = _ratio(w, _P5, _P, _Q)
    erfc_far = _exp_minus_square(far) * ((_SQRT_PI_INV - w * top / bottom) / far)
    erfc = xp.where(y <= _MIDDLE, erfc_middle, erfc_far)
    magnitude = xp.where(y <= _NEAR, small, (0.5 - erfc) + 0.5)
    return xp.where(x < 0, -magnitude, magnitude)


class Gelu(Function):
    """``x * Phi(x)`` (exact, through :func:`erf`) or its tanh approximation."""

    name = "gelu"
    fresh_grads = True

    @staticmethod
    def forward(ctx: Node, x: Array, *, approximate: str = "none", fused: bool = True) -> Array:
        y, saved = _tanh_form(x, fused) if approximate == "tanh" else _erf_form(x, fused)
        ctx.saved = (x, saved, approximate, fused)
        return y

    @staticmethod
    def backward(ctx: Node, g: Array) -> tuple[Array | None, ...]:
        x, saved, approximate, fused = ctx.saved
        if approximate == "tanh":
            fast = gelu_kernels.gelu_tanh_backward(x, saved, g) if fused else None
            if fast is not None:
                return (fast,)
            t = saved
            inner = SQRT_2_OVER_PI * (1.0 + (3.0 * KAPPA) * (x * x))
            return (g * (0.5 * (1.0 + t) + (0.5 * x) * (1.0 - t * t) * inner),)
        cdf, gauss = saved  # gauss: exp(-x**2 / 2) where the fast forward kept it
        fast = gelu_kernels.gelu_erf_backward(x, cdf, gauss, g, INV_SQRT_2PI) if gauss is not None else None
        if fast is not None:
            return (fast,)
        pdf = namespace(x).exp(-0.5 * (x * x)) * INV_SQRT_2PI
        return (g * (cdf + x * pdf),)


def _tanh_form(x: Array, fused: bool) -> tuple[Array, Array]:
    """``(0.5 x (1 + t), t)``, ``t = tanh(sqrt(2/pi) (x + 0.044715 x**3))``."""
    fast = gelu_kernels.gelu_tanh(x) if fused else None
    if fast is not None:
        return fast
    t = namespace(x).tanh(SQRT_2_OVER_PI * (x + KAPPA * (x * x * x)))
    return 0.5 * x * (1.0 + t), t


def _erf_form(x: Array, fused: bool) -> tuple[Array, tuple[Array, Array | None]]:
    """``(x cdf, (cdf, exp(-x**2 / 2) where the fast path kept it, else None))``."""
    fast = gelu_kernels.gelu_erf(x, CODY) if fused else None
    if fast is not None:
        y, cdf, gauss = fast
        return y, (cdf, gauss)
    cdf = 0.5 * (1.0 + erf(x * SQRT_HALF))
    return x * cdf, (cdf, None)

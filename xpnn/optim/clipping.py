"""Gradient transforms applied around any optimizer (optax style): clip by value, by norm, by global norm.

Written once here, not once per optimizer. None of them reads an array value on the host:
the clip factor is computed on the device as ``min(1, max_norm / (norm + 1e-6))`` and
multiplied in, so clipping never synchronises (torch#60691, Chainer PR #4982). The ``1e-6``
is torch's ``clip_grad_norm_`` constant, so the numbers equal torch's.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

from xpnn.backend import namespace
from xpnn.errors import OptimizerError

Array = Any

NORM_EPS = 1e-6


def clip_by_value(grad: Array, limit: float) -> Array:
    """Each element clipped to ``[-limit, limit]`` (torch's ``clip_grad_value_``).

    ``minimum(maximum(...))``, not ``clip``: array-api-compat's generic ``clip`` assigns
    through a boolean mask, which reads the mask's count back to the host on CuPy (a sync).
    """
    xp = namespace(grad)
    return xp.minimum(xp.maximum(grad, -limit), limit)


def _scale(xp: Any, max_norm: float, norm: Array) -> Array:
    return xp.minimum(max_norm / (norm + NORM_EPS), 1.0)


def clip_by_norm(grad: Array, max_norm: float) -> Array:
    """``grad`` rescaled so that its own L2 norm is at most ``max_norm`` (per tensor)."""
    xp = namespace(grad)
    return grad * _scale(xp, max_norm, xp.sqrt(xp.sum(grad * grad)))


def global_norm(grads: Sequence[Array]) -> Array:
    """The L2 norm of all ``grads`` taken together, a 0-d array on their device."""
    xp = namespace(grads[0])
    total = xp.sum(grads[0] * grads[0])
    for grad in grads[1:]:
        total = total + xp.astype(xp.sum(grad * grad), total.dtype)
    return xp.sqrt(total)


def clip_by_global_norm(grads: Sequence[Array], max_norm: float) -> list[Array]:
    """All ``grads`` rescaled by one factor so that their global L2 norm is at most ``max_norm``.

    Equals torch's ``clip_grad_norm_``; each gradient keeps its dtype.
    """
    if not grads:
        return []
    xp = namespace(grads[0])
    scale = _scale(xp, max_norm, global_norm(grads))
    return [grad * (scale if scale.dtype == grad.dtype else xp.astype(scale, grad.dtype)) for grad in grads]


def _check_limit(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptimizerError(f"{name}: expected a positive Python number or None, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise OptimizerError(f"{name}: expected a positive finite number or None, got {value!r}")
    return float(value)


# The clipping keywords every optimizer takes (declared here once; see xpnn.optim.hyper.signature).
CLIP_KEYWORDS = ("clip_value", "clip_norm", "clip_global_norm")
CLIP_PARAMETERS = tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation="float | None")
    for name in CLIP_KEYWORDS
)


class GradientClipping:
    """The clipping an optimizer applies before its equation, in this order: by value, by
    per-tensor norm, by global norm (each only where its limit is not ``None``)."""

    def __init__(
        self, value: float | None = None, norm: float | None = None, global_norm: float | None = None
    ) -> None:
        self.value = _check_limit("clip_value", value)
        self.norm = _check_limit("clip_norm", norm)
        self.global_norm = _check_limit("clip_global_norm", global_norm)

    def __bool__(self) -> bool:
        return self.value is not None or self.norm is not None or self.global_norm is not None

    def __call__(self, grads: list[Array]) -> list[Array]:
        if self.value is not None:
            grads = [clip_by_value(g, self.value) for g in grads]
        if self.norm is not None:
            grads = [clip_by_norm(g, self.norm) for g in grads]
        if self.global_norm is not None:
            grads = clip_by_global_norm(grads, self.global_norm)
        return grads

    def __repr__(self) -> str:
        return f"GradientClipping(value={self.value!r}, norm={self.norm!r}, global_norm={self.global_norm!r})"

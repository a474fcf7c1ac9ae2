"""Initial weights, drawn on the host so every backend starts from identical numbers.

Decision 6 of DESIGN.md: one host generator (:func:`xpnn.backend.host_rng`) for every
backend; the float32 arrays then move to the layer's backend and dtype. ``fan_in`` and
``fan_out`` are the inputs and outputs each weight connects (Dense: ``n_in``, ``n_out``;
a convolution: ``C_in / groups * kh * kw`` and ``C_out / groups * kh * kw``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from xpnn import backend
from xpnn.errors import ArgumentError, CheckpointError

HostArray = Any  # a host NumPy array (the generator's own type)
INITS = ("glorot_uniform", "he_normal", "he_uniform", "nnfs")
_LIMIT: ContextVar[int | None] = ContextVar("xpnn_init_limit", default=None)


@contextmanager
def size_limit(elements: int) -> Iterator[None]:
    """While loading a file, a layer may draw initial weights of at most ``elements`` numbers
    (what the file holds for it): a forged ``Dense(100000, 100000)`` fails before allocating."""
    token = _LIMIT.set(elements)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _check_limit(shape: tuple[int, ...]) -> None:
    limit = _LIMIT.get()
    if limit is not None and math.prod(shape) > limit:
        raise CheckpointError(
            f"a weight of shape {shape} ({math.prod(shape)} numbers), but the file holds {limit}"
        )


def normal_weights(rng: Any, shape: tuple[int, ...], std: float = 1.0) -> HostArray:
    """A float32 array of ``shape`` drawn from N(0, std**2) (torch's Embedding: std 1)."""
    _check_limit(shape)
    return (std * rng.standard_normal(shape)).astype("float32")


def initial_weights(rng: Any, init: str, shape: tuple[int, ...], *, fan_in: int, fan_out: int) -> HostArray:
    """A float32 weight array of ``shape`` drawn from ``rng`` (a NumPy ``Generator``).

    ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Keras' default);
    ``he_normal``: N(0, 2 / fan_in); ``he_uniform``: U(-a, a), a = sqrt(6 / fan_in);
    ``nnfs``: 0.01 * N(0, 1), the NNFS book's Layer_Dense.
    """
    _check_limit(shape)
    if init == "glorot_uniform":
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        return rng.uniform(-limit, limit, shape).astype("float32")
    if init == "he_normal":
        return ((2.0 / fan_in) ** 0.5 * rng.standard_normal(shape)).astype("float32")
    if init == "he_uniform":
        limit = (6.0 / fan_in) ** 0.5
        return rng.uniform(-limit, limit, shape).astype("float32")
    if init == "nnfs":
        return (0.01 * rng.standard_normal(shape)).astype("float32")
    raise ArgumentError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")


def zeros(shape: tuple[int, ...]) -> HostArray:
    """A float32 zero array on the host (an initial bias, BatchNorm's initial statistics)."""
    xp = backend.resolve("numpy").xp
    return xp.zeros(shape, dtype=xp.float32)

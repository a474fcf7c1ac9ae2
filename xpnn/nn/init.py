"""Initial weights, drawn on the host so every backend starts from identical numbers.

Decision 6 of DESIGN.md: one host generator (:func:`xpnn.backend.host_rng`) for every
backend; the float32 arrays then move to the layer's backend and dtype. ``fan_in`` and
``fan_out`` are the inputs and outputs each weight connects (Dense: ``n_in``, ``n_out``;
a convolution: ``C_in / groups * kh * kw`` and ``C_out / groups * kh * kw``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from xpnn import backend
from xpnn.errors import ArgumentError, CheckpointError, TooLargeError

HostArray = Any  # a host NumPy array (the generator's own type)
INITS = ("glorot_uniform", "he_normal", "he_uniform", "nnfs")
_LIMIT: ContextVar[int | None] = ContextVar("xpnn_init_limit", default=None)


@contextmanager
def size_limit(elements: int) -> Iterator[None]:
    """While loading a file, a layer may create initial arrays (weights, biases, BatchNorm's
    statistics) of at most ``elements`` numbers each (what the file holds for it): a forged
    ``Dense(100000, 100000)`` or ``BatchNorm(500_000_000)`` fails before allocating."""
    token = _LIMIT.set(elements)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _memory_bytes() -> int | None:
    """This machine's physical memory, where the OS says (None: unknown, no check)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_size(shape: tuple[int, ...], bytes_per_number: int = 12) -> None:
    """Refuse, before allocating, an initial array larger than what the file being loaded holds
    for its layer (:func:`size_limit`) or than this machine's memory (a weight is drawn in
    float64, then cast to float32: 12 bytes a number), as a named error, not a MemoryError
    from NumPy (or gigabytes allocated from a 4 KB file)."""
    count = math.prod(shape)
    limit = _LIMIT.get()
    if limit is not None and count > limit:
        raise CheckpointError(f"an array of shape {shape} ({count} numbers), but the file holds {limit}")
    memory = _memory_bytes()
    if memory is not None and count * bytes_per_number > memory:
        raise TooLargeError(
            f"an array of shape {shape} ({count} numbers, {count * bytes_per_number / 2**30:,.1f} GiB to "
            f"draw) is larger than this machine's memory ({memory / 2**30:,.1f} GiB)"
        )


@contextmanager
def named(who: str) -> Iterator[None]:
    """A :class:`TooLargeError` raised inside names the layer ``who`` being built."""
    try:
        yield
    except TooLargeError as error:
        raise TooLargeError(f"{who}: {error}") from None


def normal_weights(rng: Any, shape: tuple[int, ...], std: float = 1.0) -> HostArray:
    """A float32 array of ``shape`` drawn from N(0, std**2) (torch's Embedding: std 1)."""
    check_size(shape)
    return (std * rng.standard_normal(shape)).astype("float32")


def initial_weights(rng: Any, init: str, shape: tuple[int, ...], *, fan_in: int, fan_out: int) -> HostArray:
    """A float32 weight array of ``shape`` drawn from ``rng`` (a NumPy ``Generator``).

    ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Keras' default);
    ``he_normal``: N(0, 2 / fan_in); ``he_uniform``: U(-a, a), a = sqrt(6 / fan_in);
    ``nnfs``: 0.01 * N(0, 1), the NNFS book's Layer_Dense.
    """
    check_size(shape)
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
    check_size(shape, 4)
    xp = backend.resolve("numpy").xp
    return xp.zeros(shape, dtype=xp.float32)

"""Initial weights, drawn on the host so every backend starts from identical numbers.

Decision 6 of DESIGN.md: one host generator (:func:`xpnn.backend.host_rng`) for every
backend; the float32 arrays then move to the layer's backend and dtype. ``fan_in`` and
``fan_out`` are the inputs and outputs each weight connects (Dense: ``n_in``, ``n_out``;
a convolution: ``C_in / groups * kh * kw`` and ``C_out / groups * kh * kw``).
"""

from __future__ import annotations

from typing import Any

HostArray = Any  # a host NumPy array (the generator's own type)
INITS = ("glorot_uniform", "he_normal", "he_uniform", "nnfs")


def initial_weights(rng: Any, init: str, shape: tuple[int, ...], *, fan_in: int, fan_out: int) -> HostArray:
    """A float32 weight array of ``shape`` drawn from ``rng`` (a NumPy ``Generator``).

    ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Keras' default);
    ``he_normal``: N(0, 2 / fan_in); ``he_uniform``: U(-a, a), a = sqrt(6 / fan_in);
    ``nnfs``: 0.01 * N(0, 1), the NNFS book's Layer_Dense.
    """
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
    raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")

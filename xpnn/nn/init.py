"""Initial weights, drawn on the host so every backend starts from identical numbers.

Host NumPy by design (decision 6 of DESIGN.md): one generator for all backends; the arrays
then move to the layer's backend and dtype.
"""

from __future__ import annotations

import numpy as np


def initial_weights(rng: np.random.Generator, init: str, n_in: int, n_out: int) -> np.ndarray:
    """Draw a float32 (n_in, n_out) weight matrix on the host, identically for every backend.

    ``glorot_uniform``: U(-a, a), a = sqrt(6 / (n_in + n_out)) (Keras' default);
    ``he_normal``: N(0, 2 / n_in); ``he_uniform``: U(-a, a), a = sqrt(6 / n_in);
    ``nnfs``: 0.01 * N(0, 1), the NNFS book's Layer_Dense.
    """
    shape = (n_in, n_out)
    if init == "glorot_uniform":
        limit = (6.0 / (n_in + n_out)) ** 0.5
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    if init == "he_normal":
        return ((2.0 / n_in) ** 0.5 * rng.standard_normal(shape)).astype(np.float32)
    if init == "he_uniform":
        limit = (6.0 / n_in) ** 0.5
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    if init == "nnfs":
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)
    raise ValueError(f"unknown init {init!r}; expected glorot_uniform, he_normal, he_uniform or nnfs")


def host_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 zero array on the host (the initial bias)."""
    return np.zeros(shape, dtype=np.float32)


def legacy_randn(shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """``scale * np.random.randn(*shape)`` as float32, from NumPy's GLOBAL legacy generator.

    Only for the NNFS book's ``Layer_Dense``: the book draws its weights this way, so
    ``np.random.seed(0)`` / ``nnfs.init()`` reproduce its numbers. ``np.random.randn`` is
    looked up at call time because ``nnfs.init()`` patches it (to return float32).
    """
    return scale * np.asarray(np.random.randn(*shape), dtype=np.float32)

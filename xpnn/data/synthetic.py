"""The NNFS book's synthetic data sets (``spiral_data``, ``vertical_data``, ``sine_data``) and its
other draw from NumPy's global generator, the initial weights ``book_randn``.

The generators are those of the ``nnfs`` package (spiral and vertical after Karpathy's
cs231n notes). Host data: they return NumPy arrays, ``X`` float32 (the framework's dtype)
and ``y`` uint8 class labels (as ``nnfs`` returns them).

With ``seed=None`` the noise comes from NumPy's global legacy generator, exactly as the
book draws it, so after ``np.random.seed(0)`` (or ``nnfs.init()``) the data equal the
``nnfs`` package's: bit for bit under ``nnfs.init()`` (which makes ``nnfs`` return float32),
and ``nnfs``'s float64 ``X`` rounded to float32 without it. With an integer ``seed`` the
noise comes from a private ``np.random.RandomState(seed)``, leaving the global one untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["book_randn", "sine_data", "spiral_data", "vertical_data"]


def _randn(rng: np.random.RandomState | None, samples: int) -> np.ndarray:
    """Standard normal draws from ``rng``, or from the global legacy generator when ``None``.

    ``np.random.randn`` is looked up at call time on purpose: ``nnfs.init()`` patches it to
    return float32, and the book's data then carry that rounding.
    """
    return np.random.randn(samples) if rng is None else rng.randn(samples)


def _check(samples: int, classes: int) -> None:
    if samples < 1 or classes < 1:
        raise ValueError(f"samples and classes must be >= 1, got samples={samples}, classes={classes}")


def spiral_data(samples: int, classes: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms of ``samples`` points each: X (samples*classes, 2), y.

    Arm ``c`` has radius ``r = linspace(0, 1)`` and angle ``t = linspace(4c, 4(c+1)) + 0.2 * randn``;
    its points are ``(r sin 2.5t, r cos 2.5t)``.
    """

    def arm(label: int, rng: np.random.RandomState | None) -> np.ndarray:
        r = np.linspace(0.0, 1, samples)
        t = np.linspace(label * 4, (label + 1) * 4, samples) + _randn(rng, samples) * 0.2
        return np.c_[r * np.sin(t * 2.5), r * np.cos(t * 2.5)]

    return _per_class(samples, classes, seed, arm)


def vertical_data(samples: int, classes: int, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` vertical blobs of ``samples`` points: class ``c`` centred at ``(c / 3, 0.5)``,
    standard deviation 0.1 in both coordinates."""

    def blob(label: int, rng: np.random.RandomState | None) -> np.ndarray:
        return np.c_[_randn(rng, samples) * 0.1 + label / 3, _randn(rng, samples) * 0.1 + 0.5]

    return _per_class(samples, classes, seed, blob)


def _per_class(
    samples: int,
    classes: int,
    seed: int | None,
    points: Callable[[int, np.random.RandomState | None], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """X (float32) and y (uint8) of ``classes`` groups of ``samples`` rows, drawn class by class
    in the book's order (so the global generator yields the ``nnfs`` package's numbers)."""
    _check(samples, classes)
    rng = None if seed is None else np.random.RandomState(seed)
    x = np.zeros((samples * classes, 2), dtype=np.float32)
    y = np.zeros(samples * classes, dtype=np.uint8)
    for label in range(classes):
        rows = slice(samples * label, samples * (label + 1))
        x[rows] = points(label, rng)
        y[rows] = label
    return x, y


def sine_data(samples: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """One period of a sine for regression: ``X = arange(samples) / samples`` and
    ``y = sin(2 pi X)``, both (samples, 1) float32 (computed in float64, as ``nnfs`` does)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    x = np.arange(samples).reshape(-1, 1) / samples
    y = np.sin(2 * np.pi * x).reshape(-1, 1)
    return x.astype(np.float32), y.astype(np.float32)


def book_randn(shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """``scale * np.random.randn(*shape)`` as float32, from NumPy's GLOBAL legacy generator:
    the NNFS book's ``Layer_Dense`` weights. The book draws them this way, so
    ``np.random.seed(0)`` / ``nnfs.init()`` reproduce its numbers. ``np.random.randn`` is
    looked up at call time because ``nnfs.init()`` patches it (to return float32).
    """
    return scale * np.asarray(np.random.randn(*shape), dtype=np.float32)

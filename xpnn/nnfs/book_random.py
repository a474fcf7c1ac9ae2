"""The NNFS book's weight draw: NumPy's GLOBAL legacy generator, as the book seeds it.

The one module of :mod:`xpnn.nnfs` that names NumPy: the book draws ``0.01 * np.random.randn``
from the global generator, and ``np.random.seed(0)`` / ``nnfs.init()`` reproduce its numbers
only through that same generator.
"""

from __future__ import annotations

import numpy as np


def legacy_randn(shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """``scale * np.random.randn(*shape)`` as float32, from NumPy's GLOBAL legacy generator.

    Only for the NNFS book's ``Layer_Dense``: the book draws its weights this way, so
    ``np.random.seed(0)`` / ``nnfs.init()`` reproduce its numbers. ``np.random.randn`` is
    looked up at call time because ``nnfs.init()`` patches it (to return float32).
    """
    return scale * np.asarray(np.random.randn(*shape), dtype=np.float32)

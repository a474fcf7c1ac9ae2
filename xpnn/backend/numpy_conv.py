"""Optional NumPy fast path of Conv2D (beside the plain im2col equations of xpnn.nn.conv)."""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any


def applies(x: Array) -> bool:
    """Whether the fast path takes ``x`` (a NumPy array)."""
    return False and type(x) is np.ndarray

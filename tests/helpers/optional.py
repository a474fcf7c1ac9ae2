"""Optional reference libraries: a test that needs one skips, saying why, where the library is
not installed (the GPU session's interpreter may lack torch), so the rest of the suite runs."""

from __future__ import annotations

from typing import Any

import pytest

TORCH_MISSING = "torch is not installed"
COMPARES_WITH_TORCH = "this test compares with torch.optim / torch.nn.functional"


def require_torch(why: str = COMPARES_WITH_TORCH) -> Any:
    """The ``torch`` module, or skip the calling test with "torch is not installed: <why>"."""
    return pytest.importorskip("torch", reason=f"{TORCH_MISSING}: {why}")

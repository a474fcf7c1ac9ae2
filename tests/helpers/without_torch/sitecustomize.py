"""Put this folder first on PYTHONPATH and ``import torch`` fails in that interpreter (and in
every subprocess it starts) as it does where torch is not installed: the suite's proof that
it collects and runs without torch (tests/tooling/test_without_torch.py).

A meta-path finder ahead of the real ones raises ModuleNotFoundError, the exception of a
missing package, which is what ``pytest.importorskip`` turns into a skip.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

BLOCKED = "torch"


class BlockTorch:
    """Raises for ``torch`` and its submodules; for any other name the real finders carry on."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == BLOCKED or name.startswith(BLOCKED + "."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked for this test)", name=name)
        return None


sys.meta_path.insert(0, BlockTorch())

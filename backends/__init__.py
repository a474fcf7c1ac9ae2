"""The backends xpnn supports and tests, read from the ``*.toml`` files beside this one.

Adding a backend is adding a file: ``noxfile.py`` and ``tests/conftest.py`` both read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomllib

HERE = Path(__file__).parent


def load() -> list[dict[str, Any]]:
    """Every backend description, sorted by file name (numpy first: it is the reference)."""
    specs = [tomllib.loads(path.read_text()) for path in sorted(HERE.glob("*.toml"))]
    return sorted(specs, key=lambda spec: spec["name"] != "numpy")


def for_session(session: str) -> list[dict[str, Any]]:
    """The backends a nox session (``cpu``, ``gpu``, ``jax``) tests."""
    return [spec for spec in load() if spec["session"] == session]

"""The backends xpnn supports and tests, read from the ``*.toml`` files beside this one.

Adding a backend is adding a file: ``noxfile.py`` and ``tests/conftest.py`` both read them.
``requirements`` reads the package's own dependency floors from ``pyproject.toml``, so a session
installs what users get rather than a copy that drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (requires-python's floor): the same parser as the tomli backport
    import tomli as tomllib

HERE = Path(__file__).parent
PYPROJECT = HERE.parent / "pyproject.toml"


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as plain data."""
    return tomllib.loads(path.read_text())


def load() -> list[dict[str, Any]]:
    """Every backend description, sorted by file name (numpy first: it is the reference)."""
    specs = [read_toml(path) for path in sorted(HERE.glob("*.toml"))]
    return sorted(specs, key=lambda spec: spec["name"] != "numpy")


def for_session(session: str) -> list[dict[str, Any]]:
    """The backends a nox session (``cpu``, ``gpu``, ``jax``) tests."""
    return [spec for spec in load() if spec["session"] == session]


def requirements(extras: list[str]) -> list[str]:
    """The package's dependencies plus those of ``extras``, as ``pyproject.toml`` states them
    (floors such as ``numpy>=2``, environment markers kept)."""
    project = read_toml(PYPROJECT)["project"]
    optional = project["optional-dependencies"]
    return [*project["dependencies"], *(req for extra in extras for req in optional[extra])]

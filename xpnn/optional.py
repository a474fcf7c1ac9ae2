"""Optional dependencies: import one, or raise an error that names the pip extra providing it."""

from __future__ import annotations

import importlib
from typing import Any

from xpnn.errors import MissingDependencyError


def require(module: str, *, extra: str, who: str) -> Any:
    """``importlib.import_module(module)``, or :class:`~xpnn.errors.MissingDependencyError`
    saying that ``who`` needs it and that ``pip install 'xpnn[extra]'`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{who} needs {module}, which cannot be imported ({error}); "
            f"install it with: pip install 'xpnn[{extra}]'"
        ) from error

"""The no-host-sync guard: on array-api-strict, every host conversion of an array raises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_HOST_CONVERSIONS = (
    "__array__",
    "__float__",
    "__bool__",
    "__int__",
    "__index__",
    "__complex__",
    "__dlpack__",
)


@contextlib.contextmanager
def no_host_sync_strict() -> Iterator[None]:
    import array_api_strict

    cls = type(array_api_strict.asarray(0.0))

    def forbidden(name: str) -> Any:
        def raiser(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"host conversion {name} of an array during a training step")

        return raiser

    saved = {name: cls.__dict__.get(name) for name in _HOST_CONVERSIONS}
    for name in _HOST_CONVERSIONS:
        setattr(cls, name, forbidden(name))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                delattr(cls, name)
            else:
                setattr(cls, name, value)

"""Fixtures: the backends under test come from ``$XPNN_TEST_BACKENDS`` (set by nox from
``backends/``), comma-separated; run bare, the suite tests NumPy only."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import pytest

from tests.helpers.host_sync import no_host_sync_strict
from xpnn import backend

SELECTED = [name for name in os.environ.get("XPNN_TEST_BACKENDS", "numpy").split(",") if name]
# XPNN_KERNELS=off: the whole suite with every fast path off (xpnn.kernels.enabled(False)): the
# plain equations alone must pass it; tests of a fast path itself turn them on (``fast_paths``)
KERNELS_OFF = os.environ.get("XPNN_KERNELS", "on") == "off"
if "jax" in SELECTED:  # float64 gradient checks need 64-bit JAX; read when jax is first imported
    os.environ.setdefault("JAX_ENABLE_X64", "1")


def pytest_report_header(config: pytest.Config) -> str:
    fast = "off (XPNN_KERNELS=off: the plain equations)" if KERNELS_OFF else "on"
    return f"xpnn backends under test: {', '.join(SELECTED)}; fast paths {fast}"


@pytest.fixture(autouse=True)
def kernels_switch(request: pytest.FixtureRequest) -> Any:
    """Every fast path off for the test under XPNN_KERNELS=off, unless it tests one (the
    ``fast_paths`` marker: a test module of xpnn.kernels, or a test that needs them on)."""
    from xpnn import kernels

    wanted = not KERNELS_OFF or request.node.get_closest_marker("fast_paths") is not None
    before = kernels.enabled()
    kernels.enabled(wanted)
    yield
    kernels.enabled(before)


@pytest.fixture(params=SELECTED)
def bk(request: pytest.FixtureRequest) -> backend.Backend:
    """A resolved backend (name, xp, device) under test. Unavailable: the test fails."""
    return backend.resolve(request.param)


@pytest.fixture
def xp(bk: backend.Backend) -> Any:
    return bk.xp


@pytest.fixture
def to_bk(bk: backend.Backend) -> Any:
    """``to_bk(host_array, dtype=None)``: a host NumPy array copied onto the backend."""

    def move(a: Any, dtype: str | None = None) -> Any:
        a = np.asarray(a)
        kind = dtype or ("float32" if a.dtype == np.float32 else str(a.dtype))
        return backend.from_host(a, bk, backend.dtype_named(bk.xp, kind))

    return move


@pytest.fixture
def no_host_sync(bk: backend.Backend) -> Any:
    """A context manager that, on array-api-strict, makes every host conversion of an array
    (``__array__``, ``__float__``, ``__bool__``, ``__int__``, ...) raise: a hidden host sync in a
    training step fails here instead of slowing down CuPy. On other backends it does nothing."""
    if bk.name == "array_api_strict":
        return no_host_sync_strict
    return contextlib.nullcontext

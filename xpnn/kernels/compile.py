"""numba, optional and imported at the first call: whether it runs, and how loops compile.

Every loop in :mod:`xpnn.kernels` computes the same numbers to the last bit as the NumPy form
it replaces: the same floating-point operations in the same order, every scalar cast to the
array's dtype first (as NumPy does with a Python float), no fused multiply-add or
reassociation (``fastmath=False``), and ``error_model="numpy"`` so a division by zero gives
inf as NumPy's does (and the loop vectorises). ``cache=True`` keeps the compiled machine code
next to the module, so only the first run on a machine pays the compile (a few seconds).

Where numba is absent, or the one switch :func:`xpnn.kernels.enabled` is off (or :data:`enabled`
here, which tests flip to exercise the NumPy in-place forms alone), :func:`available` is False
and every loop's caller runs its NumPy form.
"""

from __future__ import annotations

import types
from typing import Any

from xpnn import kernels

enabled = True  # False: never use numba (tests flip it to exercise the NumPy forms)
_installed: bool | None = None  # whether numba can be imported, looked up once


def available() -> bool:
    """True where numba imports (tried once, at the first call) and the fast paths are on."""
    global _installed
    if not enabled or not kernels.enabled():
        return False
    if _installed is None:
        try:
            import numba  # noqa: F401  # optional: a missing or broken install means the NumPy kernels
        except Exception:  # e.g. ImportError: "Numba needs NumPy 2.3 or less"
            _installed = False
        else:
            _installed = True
    return _installed


# numba's options for every loop: numpy's division semantics, no reassociation, GIL released
OPTIONS: dict[str, Any] = dict(error_model="numpy", fastmath=False, nogil=True)


def jit(loop: Any, **overrides: Any) -> Any:
    """``loop`` compiled lazily (at its first call) with the options every kernel here needs
    (``overrides`` replace some, e.g. ``fastmath`` for a kernel whose sums may be reordered)."""
    import numba  # optional: only reached where available() imported it

    options = {**OPTIONS, **overrides}
    try:
        return numba.njit(cache=True, **options)(loop)
    except RuntimeError:  # no writeable cache directory: compile at every start instead
        return numba.njit(**options)(loop)


class Threaded:
    """A loop whose last argument is ``parts``, compiled twice: serially (``parts`` 1: the loop
    as it always ran) and, at the first call with more parts, with numba's ``parallel=True``, so
    that its ``prange`` over the parts runs on numba's threads (see :mod:`.threads`)."""

    def __init__(self, loop: Any, **overrides: Any) -> None:
        self.loop, self.overrides = loop, overrides
        self.serial = jit(loop, **overrides)
        self.parallel: Any = None

    def __call__(self, parts: int, *args: Any) -> Any:
        if parts <= 1:
            return self.serial(*args, 1)
        if self.parallel is None:
            # a copy under its own name: numba's cache keys a loop by module, name and line, not
            # by its options, so the parallel build would otherwise load the serial one's code
            loop = self.loop
            copy = types.FunctionType(loop.__code__, loop.__globals__, loop.__name__ + "_threads",
                                      loop.__defaults__, loop.__closure__)  # fmt: skip
            copy.__qualname__ = loop.__qualname__ + "_threads"
            self.parallel = jit(copy, parallel=True, **self.overrides)
        return self.parallel(*args, parts)


def threaded(loop: Any, **overrides: Any) -> Threaded:
    """``loop`` (last argument ``parts``) compiled lazily, serially and in parallel."""
    return Threaded(loop, **overrides)

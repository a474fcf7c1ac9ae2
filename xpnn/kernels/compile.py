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

from typing import Any

from xpnn import kernels
from xpnn.kernels import threads

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
    """A loop whose last three arguments are ``begin, end, parts``: it computes parts
    ``begin..end-1`` of ``parts`` equal pieces of its work. Compiled once, serially; called with
    more than one thread, :func:`.threads.run` splits the work into pieces that the caller's
    thread and a pool of Python threads take one at a time (the GIL released inside the loop)."""

    def __init__(self, loop: Any, **overrides: Any) -> None:
        self.loop = jit(loop, **overrides)

    def __call__(self, parts: int, *args: Any) -> Any:
        if parts <= 1:  # the serial loop, called here: one Python frame fewer per loop of a step
            return self.loop(*args, 0, 1, 1)
        return threads.run(self.loop, parts, args)


def threaded(loop: Any, **overrides: Any) -> Threaded:
    """``loop`` (last arguments ``begin, end, parts``) compiled lazily, run on several threads."""
    return Threaded(loop, **overrides)

"""Flush-to-zero on the host CPU: run a block with float subnormals read and written as zero.

On x86 every multiply or divide that reads or produces a subnormal float (below 1.2e-38 in
float32) takes a microcode assist: a NumPy multiply over 235,146 subnormal float32 values
took 1,096 us here against 30 us for normal ones. Adam's first moment reaches that range on
every weight whose gradient stays zero for a few hundred steps (Fashion-MNIST's border
pixels), and the optimizer step of a small MLP then costs 2-3x its normal time.

:func:`flush_denormals` sets the FTZ and DAZ bits of the calling thread's MXCSR register for
the duration of a block and restores the previous environment after it, as TensorFlow's
``ScopedFlushDenormal`` does around its CPU kernels and XLA (so JAX) around its CPU
executables; ``torch.set_flush_denormal(True)`` does it globally, opt-in. Numbers change
only where a value falls below the smallest normal float, which becomes 0. It works
through glibc's ``fegetenv``/``fesetenv`` on x86-64 Linux; elsewhere (other CPUs, where
subnormals cost nothing, or an unknown layout) it does nothing.
Arrays on a GPU never see it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys
from contextlib import AbstractContextManager, nullcontext

_ENV_SIZE = 32  # sizeof(fenv_t) on x86-64 glibc: the 28-byte x87 environment, then MXCSR
_MXCSR_OFFSET = 28
_FTZ_DAZ = 0x8040  # MXCSR bit 15: flush results to zero; bit 6: read subnormal inputs as zero


def _load_libm() -> ctypes.CDLL | None:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        libm.fegetenv.argtypes = libm.fesetenv.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return libm


_libm = _load_libm()


_flushing_of: dict[bytes, ctypes.Array[ctypes.c_char]] = {}  # an environment -> it with FTZ and DAZ


_spare: list[ctypes.Array[ctypes.c_char]] = []  # saved-environment buffers of blocks that ended


def _enter() -> ctypes.Array[ctypes.c_char]:
    """Set FTZ and DAZ on this thread; returns the environment to restore."""
    assert _libm is not None
    saved = _spare.pop() if _spare else ctypes.create_string_buffer(_ENV_SIZE)
    _libm.fegetenv(saved)
    fast = _flushing_of.get(saved.raw)
    if fast is None:
        mxcsr = int.from_bytes(saved.raw[_MXCSR_OFFSET:], "little") | _FTZ_DAZ
        fast = ctypes.create_string_buffer(saved.raw[:_MXCSR_OFFSET] + mxcsr.to_bytes(4, "little"), _ENV_SIZE)
        if len(_flushing_of) < 64:  # a handful in practice (exception flags differ)
            _flushing_of[saved.raw] = fast
    _libm.fesetenv(fast)
    return saved


def _works() -> bool:
    """Whether the flag really flushes here (a check of the fenv_t layout assumed above)."""
    if _libm is None:
        return False
    smallest = sys.float_info.min  # Python floats are C doubles: the same MXCSR governs them
    saved = _enter()
    try:
        flushed = smallest * 0.5
    finally:
        _libm.fesetenv(saved)
    return flushed == 0.0 and smallest * 0.5 != 0.0


SUPPORTED = _works()


class _Flushing:
    """The block of :func:`flush_denormals` (a class: a third of the cost of a generator)."""

    def __enter__(self) -> None:
        self.saved = _enter()

    def __exit__(self, *exc: object) -> None:
        _libm.fesetenv(self.saved)  # type: ignore[union-attr]
        if len(_spare) < 8:
            _spare.append(self.saved)  # ctypes buffers cost microseconds to create


def flush_denormals(enabled: bool = True) -> AbstractContextManager[None]:
    """Within the block, subnormal floats computed on this thread (NumPy, array-api-strict,
    torch CPU) are flushed to zero and read as zero; a no-op when ``enabled`` is False or
    the platform has no such switch (:data:`SUPPORTED`)."""
    return _Flushing() if enabled and SUPPORTED else nullcontext()

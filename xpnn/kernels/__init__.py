"""Optional fast paths, beside the plain equations they serve, and the ONE switch for all.

Every layer's ``forward``, every function's backward and every optimizer's ``update`` is its
plain Array API equation (:mod:`xpnn.functional`, :mod:`xpnn.optim.optimizers`): that is the
definition. The modules here compute the same numbers faster where they apply (NumPy in place,
numba loops; CuPy kernels will live here too), each tested equal to the equation it serves,
each found by reference from the code that uses it:

============================  ================================  ======================================
module                        serves                            per-object override (``= False``)
============================  ================================  ======================================
:mod:`.optimizers`            each optimizer's ``update``       ``optimizer.fused``
(``xpnn.optim.flat``)         flat parameter buffers            ``optimizer.flat``
:mod:`.denormals`             the optimizer step's flush-to-0   ``optimizer.flush_denormals``
:mod:`.dense`                 linear, ReLU, Dense + ReLU        ``Dense.fused``, ``ReLU.fused``
:mod:`.cross_entropy`         softmax, cross-entropy            ``Softmax.fused``, the losses' ``fused``
:mod:`.conv`, :mod:`.conv_numba`  conv2d, max pooling           ``Conv2D.fused``, ``MaxPool2D.fused``
:mod:`.batch_norm`            batch_norm (training, 4-D)        ``BatchNorm.fused``
:mod:`.data`                  the loader's uint8 batch gather   ``DataLoader.fused``
:mod:`.memory`                ``fit``'s freed memory (glibc)    none (glibc's own variables)
============================  ================================  ======================================

``xpnn.kernels.enabled(False)`` (or ``with xpnn.kernels.disabled(): ...``) turns every one of
them off, process-wide: everything then runs the plain equations, which is what a user
debugging a wrong number and every equality test want. numba is optional (the ``fast``
extra); where it is missing the NumPy in-place forms run (:mod:`.compile`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_on = [True]


def enabled(flag: bool | None = None) -> bool:
    """Whether the fast paths run; ``enabled(False)`` / ``enabled(True)`` sets it (returns the
    new setting). Off, every layer, loss, optimizer and loader runs its plain equation."""
    if flag is not None:
        _on[0] = bool(flag)
    return _on[0]


@contextmanager
def disabled() -> Iterator[None]:
    """Run the block with every fast path off (the plain equations), then restore the switch."""
    before = _on[0]
    _on[0] = False
    try:
        yield
    finally:
        _on[0] = before

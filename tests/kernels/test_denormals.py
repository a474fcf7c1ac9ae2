"""Flush-to-zero around the optimizer step (``xpnn.backend.denormals``): it flushes inside
the block only, restores the caller's floating-point environment, and changes no parameter."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn import Parameter
from xpnn.kernels import denormals
from xpnn.optim.optimizers import Adam, RMSProp

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

TINY = np.float32(np.finfo(np.float32).tiny)  # the smallest normal float32
HALF = np.float32(0.5)
needs_switch = pytest.mark.skipif(
    not denormals.SUPPORTED, reason="this platform has no flush-to-zero switch (x86-64 Linux only)"
)


def test_without_the_block_numpy_keeps_gradual_underflow():
    assert 0 < TINY * HALF < TINY
    with denormals.flush_denormals(enabled=False):
        assert TINY * HALF != 0


@needs_switch
def test_the_block_flushes_results_and_inputs_then_restores_the_environment():
    subnormal = TINY * HALF
    with denormals.flush_denormals():
        assert TINY * HALF == 0  # flush to zero: a subnormal result becomes 0
        assert subnormal + np.float32(0) == 0  # denormals are zero: a subnormal input reads as 0
        with denormals.flush_denormals():  # nested blocks restore the outer one's setting
            pass
        assert TINY * HALF == 0
    assert TINY * HALF == subnormal


@needs_switch
def test_the_environment_comes_back_when_the_block_raises():
    with pytest.raises(RuntimeError), denormals.flush_denormals():
        raise RuntimeError("inside")
    assert TINY * HALF != 0


def _train_with_a_dead_input(optimizer: type, flush: bool, flat: bool) -> tuple[np.ndarray, dict]:
    """One nonzero gradient, then 1,500 zero gradients: the moments decay into the subnormal
    range (Fashion-MNIST's border pixels). Returns the final weights and state."""
    rng = np.random.default_rng(0)
    params = [Parameter(rng.standard_normal(shape).astype(np.float32), "w") for shape in ((8, 16), (16,))]
    opt = optimizer(params, lr=1e-3)
    opt.flush_denormals, opt.flat = flush, flat
    for step in range(1500):
        for p in params:
            p.grad = (rng.standard_normal(p.shape) * 1e-2).astype(np.float32) * (step == 0)
        opt.step()
    return np.concatenate([p.value.ravel() for p in params]), opt.state_dict()["state"]


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-parameter"])
@pytest.mark.parametrize("optimizer, moment", [(Adam, "exp_avg"), (RMSProp, "square_avg")])
def test_flushing_zeroes_only_subnormal_state_and_leaves_the_weights_bit_for_bit(optimizer, moment, flat):
    exact_w, exact_state = _train_with_a_dead_input(optimizer, flush=False, flat=flat)
    flushed_w, flushed_state = _train_with_a_dead_input(optimizer, flush=True, flat=flat)
    np.testing.assert_array_equal(flushed_w, exact_w)
    exact = np.concatenate([exact_state[i][moment].ravel() for i in sorted(exact_state)])
    flushed = np.concatenate([flushed_state[i][moment].ravel() for i in sorted(flushed_state)])
    subnormal = (exact != 0) & (np.abs(exact) < TINY)
    assert subnormal.sum() > 0.5 * exact.size  # gradual underflow leaves them stuck there
    if denormals.SUPPORTED:
        assert not np.any(flushed[subnormal])
        np.testing.assert_array_equal(flushed[~subnormal], exact[~subnormal])
    else:
        np.testing.assert_array_equal(flushed, exact)

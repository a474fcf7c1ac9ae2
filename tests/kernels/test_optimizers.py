"""The optional numba kernels (:mod:`xpnn.backend.compile`): bit for bit the NumPy in-place
kernels and the plain equations, over many steps, flat and per parameter, float32 and float64,
contiguous and not. The NumPy kernels are tested here too with ``compile.enabled = False``,
so they stay covered where numba is installed (and are the only path where it is not)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optimizer_cases import CASES, gradient_sequence, make, step_with
from xpnn import backend
from xpnn.kernels import compile, dense
from xpnn.kernels import optimizers as kernels

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off

STEPS = 60
# every case a kernels kernel covers (the others never reach numba: see test_fused_switch)
COVERED = ["sgd", "sgd_momentum", "sgd_dampening", "sgd_weight_decay", "sgd_decay", "adagrad",
           "adagrad_weight_decay", "adagrad_decay_initial", "rmsprop", "rmsprop_decay", "adam",
           "adam_weight_decay", "adam_decay", "adam_schedule", "adamw"]  # fmt: skip
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _numpy(a: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(a, dtype=dtype or np.float32)


def _train(name: str, dtype: str, *, flat: bool, fused: bool = True) -> list[np.ndarray]:
    params, opt = make(name, _numpy, dtype)
    opt.flat, opt.fused = flat, fused
    for grads in gradient_sequence(STEPS):
        step_with(opt, params, grads, _numpy)
    state = [a for s in opt.state.values() for k, a in sorted(s.items()) if k != "step"]
    return [backend.to_host(p.value) for p in params] + [np.array(a, copy=True) for a in state]


def _assert_bits(got: list[np.ndarray], want: list[np.ndarray], dtype: str) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == np.dtype(dtype) and a.shape == b.shape
        bits = f"u{a.dtype.itemsize}"  # the stored bits: signed zeros and NaNs compared too
        assert np.array_equal(a.view(bits), b.view(bits))


def _count_numba_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    for name in ("adam", "sgd", "rms"):
        real = getattr(kernels, f"_{name}_numba")

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> bool:
            done = _real(*args, **kwargs)
            if done:
                calls.append(_name)
            return done

        monkeypatch.setattr(kernels, f"_{name}_numba", spy)
    return calls


@pytest.fixture
def numba_on(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    pytest.importorskip("numba", reason="numba is optional (the fast extra); its kernels are not tested")
    monkeypatch.setattr(compile, "enabled", True)
    return _count_numba_calls(monkeypatch)


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-parameter"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", COVERED)
def test_numba_kernels_equal_the_plain_equations_bit_for_bit(
    name: str, dtype: str, flat: bool, numba_on: list[str]
) -> None:
    got = _train(name, dtype, flat=flat)
    assert numba_on, "the numba kernel never ran"
    _assert_bits(got, _train(name, dtype, flat=flat, fused=False), dtype)


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-parameter"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", COVERED)
def test_numpy_kernels_equal_the_plain_equations_with_numba_switched_off(
    name: str, dtype: str, flat: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compile, "enabled", False)
    calls = _count_numba_calls(monkeypatch)
    got = _train(name, dtype, flat=flat)
    assert calls == [] and not compile.available()
    _assert_bits(got, _train(name, dtype, flat=flat, fused=False), dtype)


def _arrays(rng: np.random.Generator, dtype: str, layout: str, count: int) -> list[np.ndarray]:
    """``count`` arrays of 6x8 values: C-contiguous, strided 1-D, or transposed 2-D."""
    made = []
    for _ in range(count):
        base = rng.standard_normal((8, 12)).astype(dtype)
        made.append({"contiguous": base[:, :6].copy(), "strided": base.reshape(-1)[::3],
                     "transposed": base[:6, :8].T}[layout])  # fmt: skip
    return made


def _kernel_run(kernel: str, arrays: list[np.ndarray], grads: list[np.ndarray]) -> None:
    """Fifty steps of one kernels kernel on ``arrays`` (value, then state) in place."""
    for k, g in enumerate(grads, start=1):
        if kernel == "adam":
            scalars = dict(betas=(0.9, 0.99), step_size=0.01 / (1 - 0.9**k), bias2_root=(1 - 0.99**k) ** 0.5)
            assert kernels.adam(arrays[0], g, arrays[1], arrays[2], eps=1e-8, shrink=0.999, **scalars)
        elif kernel == "momentum":
            assert kernels.sgd(arrays[0], g, 0.1, arrays[1], momentum=0.9, dampening=0.25)
        elif kernel == "sgd":
            assert kernels.sgd(arrays[0], g, 0.1)
        else:
            assert kernels.rms(arrays[0], g, arrays[1], lr=0.01, eps=1e-7, rho=0.9)


@pytest.mark.parametrize("layout", ["contiguous", "strided", "transposed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel", ["adam", "momentum", "sgd", "rms"])
def test_numba_and_numpy_kernels_agree_on_any_layout(
    kernel: str, dtype: str, layout: str, numba_on: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    count = {"adam": 3, "sgd": 1}.get(kernel, 2)
    results = []
    for use_numba in (True, False):
        rng = np.random.default_rng(5)
        arrays = _arrays(rng, dtype, layout, count)
        for state in arrays[1:]:
            np.abs(state, out=state)  # second moments and accumulators are never negative
        grads = [g * (1e-3 if k % 5 else 30.0) for k, g in enumerate(_arrays(rng, dtype, layout, 50))]
        monkeypatch.setattr(compile, "enabled", use_numba)
        _kernel_run(kernel, arrays, grads)
        results.append(arrays)
    _assert_bits(results[0], results[1], dtype)
    assert bool(numba_on) == (layout != "transposed")  # a 2-D strided view is left to NumPy's passes


def test_numba_declines_what_it_does_not_cover(numba_on: list[str]) -> None:
    half = np.ones(4, np.float16)
    assert not kernels._sgd_numba(half, half, 0.1)
    mixed = np.ones(4, np.float32)
    assert not kernels._sgd_numba(mixed, np.ones(4, np.float64), 0.1)
    assert np.array_equal(mixed, np.ones(4))


def test_a_division_by_zero_gives_inf_and_nan_as_numpy_does(
    numba_on: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = []
    for use_numba in (True, False):
        monkeypatch.setattr(compile, "enabled", use_numba)
        w, g, acc = (
            np.ones(3, np.float32),
            np.array([0.0, 1e-30, -1e-30], np.float32),
            np.zeros(3, np.float32),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            assert kernels.rms(w, g, acc, lr=0.1, eps=0.0)
        results.append([w, acc])
    assert np.isnan(results[0][0][0]) and list(results[0][0][1:]) == [-np.inf, np.inf]  # g*g underflowed
    _assert_bits(results[0], results[1], "float32")


def test_import_xpnn_does_not_import_numba() -> None:
    code = "import sys, xpnn, xpnn.kernels.optimizers; assert 'numba' not in sys.modules, 'numba imported'"
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_without_numba_the_fused_path_still_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile, "_installed", False)  # as where numba is not installed
    assert not compile.available() and not kernels._adam_numba(
        np.ones(2), np.ones(2), np.zeros(2), np.zeros(2), betas=(0.9, 0.99), step_size=0.1,
        bias2_root=1.0, eps=1e-8,
    )  # fmt: skip
    _assert_bits(
        _train("adam", "float32", flat=True), _train("adam", "float32", flat=True, fused=False), "float32"
    )
    assert CASES["adam"][0].fused is True


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_backward_in_one_pass_equals_the_plain_mask_product(
    dtype: str, numba_on: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((33, 17)).astype(dtype)
    x[0, :4] = [0.0, -0.0, np.nan, np.inf]
    dout = rng.standard_normal((33, 17)).astype(dtype)
    dout[1, :4] = [np.inf, -np.inf, np.nan, -0.0]
    results = []
    for fused in (True, False):
        relu = xpnn.ReLU()
        relu.fused = fused
        relu.forward(x)
        with np.errstate(invalid="ignore"):  # 0 * inf: NumPy warns, numba's loop does not
            results.append(relu.backward(dout))
    assert dense.relu_grad(x, dout) is not None  # the fused run took the numba pass
    _assert_bits(results[:1], results[1:], dtype)
    assert dense.relu_grad(x, dout.astype("float16")) is None  # mixed dtypes: the plain product
    transposed = dense.relu_grad(x.T, dout.T)  # one transposed layout: flat in memory order
    assert transposed is not None and transposed.strides == dout.T.strides
    with np.errstate(invalid="ignore"):
        _assert_bits([np.ascontiguousarray(transposed)], [np.astype(x.T > 0, dtype) * dout.T], dtype)
    assert dense.relu_grad(x.T, np.ascontiguousarray(dout.T)) is None  # two layouts: plain
    assert dense.relu_grad(x[:, ::2], dout[:, ::2]) is None  # strided: the plain product
    monkeypatch.setattr(compile, "enabled", False)
    assert dense.relu_grad(x, dout) is None


def test_a_numba_that_fails_to_import_means_the_numpy_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # "import numba" raises ImportError
    monkeypatch.setattr(compile, "_installed", None)
    assert not compile.available() and compile._installed is False
    _assert_bits(
        _train("sgd_momentum", "float32", flat=True),
        _train("sgd_momentum", "float32", flat=True, fused=False),
        "float32",
    )

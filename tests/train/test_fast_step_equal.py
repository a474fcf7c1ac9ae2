"""The timed training step with every fast path on (numba kernels where installed, the steady flat
step, fused layers and loss, the fused loader) gives the numbers of the step with every fast path
off through the one switch (``xpnn.kernels.disabled()``), bit for bit, and keeps float32
float32; on array-api-strict, no host synchronisation per step."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend


def _model(widths: list[int]) -> xpnn.Sequential:
    layers: list[xpnn.Layer] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers += [xpnn.Dense(a, b)] + ([xpnn.ReLU()] if i < len(widths) - 2 else [])
    return xpnn.Sequential(layers, seed=0)


def _loop(bk: Any, to_bk: Any, optimizer: str, no_host_sync: Any) -> list[np.ndarray]:
    """Thirty steps of the benchmark's public loop; the losses and the final weights."""
    model = _model([20, 16, 12, 5]).to(bk.name)
    momentum = 0.9 if optimizer == "momentum" else 0.0
    params = model.parameters()
    opt = xpnn.Adam(params, lr=0.01) if optimizer == "adam" else xpnn.SGD(params, lr=0.2, momentum=momentum)
    loss_fn = xpnn.SoftmaxCrossEntropy(validate=False)
    rng = np.random.default_rng(1)
    x, y = to_bk(rng.random((240, 20)), "float32"), to_bk(rng.integers(0, 5, 240), "int64")
    xp, losses = backend.namespace(x), []
    with no_host_sync():
        for start in range(0, 240, 8):
            idx = to_bk(np.arange(start, start + 8), "int64")
            loss = loss_fn.forward(model.forward(xp.take(x, idx, axis=0)), xp.take(y, idx, axis=0))
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            losses.append(loss)
    return [backend.to_host(a) for a in losses + [p.value for p in model.parameters()]]


@pytest.mark.fast_paths
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum"])
def test_the_fast_step_gives_the_numbers_of_every_switch_off(
    optimizer: str, bk: Any, to_bk: Any, no_host_sync: Any
) -> None:
    fast = _loop(bk, to_bk, optimizer, no_host_sync)
    with xpnn.kernels.disabled():
        plain = _loop(bk, to_bk, optimizer, no_host_sync)
    for a, b in zip(fast, plain, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)


@pytest.mark.fast_paths
def test_fit_on_uint8_images_gives_the_numbers_of_every_switch_off(bk: Any) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (96, 4, 5), dtype=np.uint8), rng.integers(0, 5, 96)

    def run() -> list[np.ndarray]:
        model = xpnn.Sequential([xpnn.Flatten(), *_model([20, 16, 5]).layers], seed=0).to(bk.name)
        opt = xpnn.Adam(model.parameters(), lr=0.01)
        history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=opt, epochs=2, batch_size=16,
                            seed=4, verbose=0)  # fmt: skip
        return [np.asarray(history["loss"])] + [backend.to_host(p.value) for p in model.parameters()]

    fast = run()
    with xpnn.kernels.disabled():
        plain = run()
    for a, b in zip(fast, plain, strict=True):
        assert np.array_equal(a, b)
    assert fast[1].dtype == np.float32


def _regularized(bk: Any, dtype: str) -> xpnn.Sequential:
    layers = [xpnn.Dense(20, 16, weight_regularizer_l2=1e-3), xpnn.ReLU(), xpnn.Dropout(0.3),
              xpnn.Dense(16, 5, weight_regularizer_l1=1e-3)]  # fmt: skip
    return xpnn.Sequential(layers, seed=0).to(bk.name, dtype=dtype)


@pytest.mark.fast_paths
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_s_step_of_a_sequential_on_its_chain_gives_the_tape_s_bits(
    dtype: str, bk: Any, to_bk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train_step`` runs a Sequential with one of xpnn's losses on its plain-array chain; the
    same model through the tape (a loss written as a function) takes the same steps."""
    from xpnn.train.loop import train_step

    chained: list[int] = []
    real = xpnn.Sequential.loss_and_gradients
    monkeypatch.setattr(xpnn.Sequential, "loss_and_gradients", lambda *a: chained.append(1) or real(*a))
    rng = np.random.default_rng(3)
    x, y = to_bk(rng.random((48, 20)), dtype), to_bk(rng.integers(0, 5, 48), "int64")
    xp, runs = backend.namespace(x), []
    loss = xpnn.SoftmaxCrossEntropy()
    for chain in (True, False):
        model = _regularized(bk, dtype)
        opt = xpnn.Adam(model.parameters(), lr=0.01)
        results = []
        for start in range(0, 48, 16):
            idx = to_bk(np.arange(start, start + 16), "int64")
            xb, yb = xp.take(x, idx, axis=0), xp.take(y, idx, axis=0)
            step_loss = loss if chain else (lambda p, t: loss(p, t, validate=False))
            results += list(train_step(model, step_loss, opt, xb, yb))
        runs.append([backend.to_host(a) for a in results + [p.value for p in model.parameters()]])
    assert len(chained) == 3  # the first run's steps, not the second's
    for a, b in zip(*runs, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
